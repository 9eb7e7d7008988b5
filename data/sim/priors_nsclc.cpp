// Language priors for TCGA-NSCLC (lung adenocarcinoma / lung squamous cell carcinoma),
// written in this repository: 33 instance priors ("Entity: morphological description.") with
// the simulator's relative abundance per class, and the class descriptions at two scales.
#include "data/sim/simulate.h"

namespace lm::data::detail {

namespace {

struct Row {
  const char* text;
  double luad, lusc;  // relative abundance in each class (simulator only)
};

// clang-format off
const Row kEntities[] = {
  // ---- characteristic of adenocarcinoma ---------------------------------------------------
  {"Lepidic pattern: atypical pneumocyte-like tumour cells lining intact alveolar walls without stromal or vascular invasion.", 3.0, 0.0},
  {"Acinar pattern: invasive round to oval glands with central lumina formed by cuboidal or columnar tumour cells in a fibrous stroma.", 3.0, 0.1},
  {"Papillary pattern: tumour cells growing along branching central fibrovascular cores that project into alveolar spaces.", 2.0, 0.0},
  {"Micropapillary pattern: small tufts and florets of tumour cells without fibrovascular cores floating within alveolar spaces.", 1.2, 0.0},
  {"Solid adenocarcinoma: sheets of polygonal tumour cells without glands or keratin, some containing intracytoplasmic mucin droplets.", 1.0, 0.3},
  {"Cribriform pattern: fused glands forming sieve-like nests with multiple back-to-back punched-out lumina.", 1.0, 0.0},
  {"Invasive mucinous pattern: tall columnar goblet-like cells with abundant apical mucin and small basal nuclei lining alveolar walls.", 1.0, 0.0},
  {"Extracellular mucin: pools of pale blue-grey mucin filling alveolar spaces and dissecting the stroma.", 0.8, 0.05},
  {"Hobnail pneumocyte-like cells: tumour cells with apical snouts, fine chromatin and intranuclear pseudoinclusions, resembling type II pneumocytes.", 1.5, 0.0},
  {"Spread through air spaces: detached micropapillary clusters, solid nests or single tumour cells in alveolar spaces beyond the edge of the tumour.", 0.5, 0.1},
  {"Central scar with entrapped glands: a fibroelastotic scar containing entrapped, angulated neoplastic glands and anthracotic pigment.", 1.0, 0.2},
  // ---- characteristic of squamous cell carcinoma -----------------------------------------
  {"Keratin pearls: concentric whorls of keratinizing squamous cells with bright eosinophilic lamellated keratin at the centre.", 0.0, 3.0},
  {"Intercellular bridges: fine desmosomal spines crossing the narrow spaces between adjacent squamous tumour cells.", 0.0, 2.5},
  {"Individual cell keratinization: single dyskeratotic tumour cells with dense, glassy orange-pink cytoplasm and pyknotic nuclei.", 0.0, 2.0},
  {"Solid squamous nests: large nests and sheets of polygonal cells with abundant eosinophilic cytoplasm and distinct cell borders.", 0.2, 3.0},
  {"Basaloid pattern: nests of small cells with scant cytoplasm and hyperchromatic nuclei with peripheral palisading.", 0.0, 1.2},
  {"Comedo-like necrosis: central necrotic debris within large nests of squamous carcinoma.", 0.1, 1.5},
  {"Bronchial squamous dysplasia: full-thickness atypia of the bronchial lining with loss of maturation and mitoses above the basal layer (carcinoma in situ).", 0.0, 0.8},
  {"Squamous metaplasia: stratified squamous epithelium with orderly maturation replacing the ciliated bronchial lining.", 0.2, 0.6},
  {"Non-keratinizing squamous carcinoma: sheets of cells with moderate eosinophilic cytoplasm and vesicular nuclei, with intercellular bridges but no keratin formation.", 0.3, 1.5},
  // ---- shared by both ---------------------------------------------------------------------
  {"Normal alveolar parenchyma: thin alveolar septa with capillaries lined by flat type I pneumocytes around empty air spaces.", 1.0, 1.0},
  {"Bronchial epithelium: pseudostratified ciliated columnar epithelium with goblet cells lining an airway.", 0.5, 0.7},
  {"Bronchial wall: hyaline cartilage plates, smooth muscle and seromucinous glands of a bronchus.", 0.4, 0.6},
  {"Intra-alveolar macrophages: alveoli filled with macrophages with abundant foamy or finely pigmented dusty cytoplasm.", 1.0, 1.0},
  {"Anthracotic pigment: coarse black carbon pigment in macrophages along septa, lymphatics and around vessels.", 0.8, 0.8},
  {"Desmoplastic stroma: reactive fibroblastic stroma with loose collagen and myxoid matrix surrounding invasive tumour.", 1.0, 1.0},
  {"Tumour necrosis: eosinophilic granular debris with nuclear dust and ghost cell outlines.", 0.6, 1.2},
  {"Lymphoid aggregates: dense clusters of small lymphocytes, sometimes with germinal centres, around airways and at the tumour edge.", 1.0, 1.0},
  {"Blood vessels: pulmonary arteries and veins with muscular and elastic walls and open lumina containing blood.", 0.8, 0.8},
  {"Hemorrhage: fresh red blood cells filling alveolar spaces and disrupting the tissue.", 0.6, 0.6},
  {"Visceral pleura: a mesothelial-lined fibrous layer with an elastic lamina at the lung surface.", 0.4, 0.3},
  {"Obstructive pneumonia: alveoli filled with neutrophils, fibrin and foamy macrophages distal to an obstructed airway.", 0.3, 0.7},
  {"Tissue fold and crush artefact: folded tissue forming a dark band of double thickness, and crushed, smeared nuclei.", 0.4, 0.4},
};

const char* kClassNames[] = {"lung adenocarcinoma", "lung squamous cell carcinoma"};

const char* kBagLow[] = {
  "A whole-slide view of lung adenocarcinoma: a peripheral tumour with glandular differentiation, mixing lepidic growth along preserved alveolar walls with invasive acinar, papillary, micropapillary or solid areas, often around a fibroelastotic central scar with anthracotic pigment and mucin.",
  "A whole-slide view of lung squamous cell carcinoma: a central tumour, often arising near a bronchus, composed of large solid nests and sheets of squamous cells with keratinization, central comedo-like necrosis and a desmoplastic stroma, with obstructive pneumonia in the lung beyond.",
};

const char* kBagHigh[] = {
  "At high magnification, lung adenocarcinoma shows cuboidal to columnar cells forming glands, papillae or lepidic linings, with vesicular nuclei, nuclear pseudoinclusions, apical snouts and intracytoplasmic or extracellular mucin, and no keratin.",
  "At high magnification, lung squamous cell carcinoma shows polygonal cells with abundant dense eosinophilic cytoplasm, distinct cell borders, intercellular bridges, individual cell keratinization and keratin pearls, and hyperchromatic nuclei.",
};
// clang-format on

}  // namespace

const TaskPriors& nsclc_priors() {
  static const TaskPriors p = [] {
    TaskPriors t;
    t.task = "nsclc";
    for (const char* c : kClassNames) t.class_names.push_back(c);
    for (const Row& r : kEntities) {
      t.entities.push_back(r.text);
      t.class_weight.push_back({r.luad, r.lusc});
    }
    for (const char* s : kBagLow) t.bag_low.push_back(s);
    for (const char* s : kBagHigh) t.bag_high.push_back(s);
    return t;
  }();
  return p;
}

}  // namespace lm::data::detail
