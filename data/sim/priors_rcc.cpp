// Language priors for TCGA-RCC (clear cell / papillary / chromophobe renal cell carcinoma),
// written in this repository: 46 instance priors ("Entity: morphological description.") with
// the simulator's relative abundance per class, and the class descriptions at two scales.
#include "data/sim/simulate.h"

namespace lm::data::detail {

namespace {

struct Row {
  const char* text;
  double ccrcc, prcc, chrcc;  // relative abundance in each class (simulator only)
};

// clang-format off
const Row kEntities[] = {
  // ---- characteristic of clear cell RCC --------------------------------------------------
  {"Clear cell nests: compact nests of polygonal tumour cells with optically clear, glycogen- and lipid-rich cytoplasm and sharply defined cell membranes.", 3.0, 0.0, 0.2},
  {"Chicken-wire vasculature: a delicate arborizing network of thin-walled capillaries that encircles small nests of clear cells in a 'chicken-wire' pattern.", 3.0, 0.1, 0.0},
  {"Solid clear cell sheets: diffuse sheets of clear cells with compressed, inconspicuous capillaries and little intervening stroma.", 2.0, 0.0, 0.2},
  {"Alveolar pattern: rounded alveolar spaces filled with clear tumour cells and separated by thin fibrovascular septa.", 2.0, 0.0, 0.1},
  {"Acinar and microcystic pattern: small gland-like lumina and microcysts lined by clear cells, sometimes containing pale eosinophilic fluid or red blood cells.", 1.5, 0.2, 0.0},
  {"Macrocystic change: cysts of varying size lined by a single layer of flattened clear cells and separated by thin fibrous septa.", 1.0, 0.2, 0.0},
  {"Granular eosinophilic tumour cells: higher-grade areas of clear cell carcinoma composed of cells with abundant granular eosinophilic cytoplasm and prominent nucleoli.", 1.0, 0.3, 0.3},
  {"High-grade nuclei: enlarged, pleomorphic tumour nuclei with conspicuous eosinophilic nucleoli visible at low power, corresponding to ISUP/WHO grade 3.", 1.0, 0.6, 0.1},
  {"Rhabdoid differentiation: discohesive tumour cells with eccentric vesicular nuclei, macronucleoli and dense eosinophilic hyaline cytoplasmic inclusions, an ISUP grade 4 feature.", 0.3, 0.1, 0.05},
  {"Cholesterol clefts: empty needle-shaped clefts left by dissolved cholesterol crystals, rimmed by foreign-body giant cells in areas of old hemorrhage.", 0.6, 0.4, 0.05},
  {"Renal vein tumour thrombus: nests of clear tumour cells with their capillary network filling and distending the lumen of a large muscular vein.", 0.4, 0.05, 0.05},
  // ---- characteristic of papillary RCC ---------------------------------------------------
  {"Papillary fronds: finger-like papillae with thin fibrovascular cores covered by a single or layered lining of cuboidal to columnar tumour cells.", 0.2, 3.0, 0.0},
  {"Foamy macrophages: aggregates of lipid-laden histiocytes with pale, finely vacuolated cytoplasm expanding the fibrovascular cores of papillae.", 0.2, 2.5, 0.0},
  {"Psammoma bodies: concentrically laminated, basophilic calcified spherules within papillary cores and the surrounding stroma.", 0.0, 1.5, 0.1},
  {"Tubulopapillary architecture: back-to-back small tubules and short papillae lined by cuboidal cells with scant cytoplasm.", 0.2, 2.0, 0.0},
  {"Low-grade basophilic papillary cells: small cuboidal cells with scant pale basophilic cytoplasm and small uniform nuclei in a single layer on the papillae (classic type 1 pattern).", 0.0, 2.0, 0.0},
  {"High-grade eosinophilic papillary cells: tall columnar cells with abundant eosinophilic cytoplasm and pseudostratified large nuclei with prominent nucleoli covering the papillae (former type 2 pattern).", 0.0, 1.5, 0.2},
  {"Hemosiderin-laden tumour cells: coarse golden-brown hemosiderin granules within tumour cells and macrophages of the papillary cores.", 0.3, 1.5, 0.1},
  {"Solid papillary pattern: sheets of tumour cells in which tightly packed, compressed papillae are recognisable only by delicate fibrovascular cores.", 0.1, 1.0, 0.1},
  {"Edematous papillary cores: broad papillae with loose, pale, oedematous or myxoid fibrovascular cores.", 0.0, 1.0, 0.0},
  {"Glomeruloid papillae: short, rounded papillary tufts filling small tubular spaces and resembling glomeruli.", 0.0, 0.8, 0.0},
  // ---- characteristic of chromophobe RCC -------------------------------------------------
  {"Plant-cell-like borders: large polygonal tumour cells with thick, prominent cell membranes that give a vegetable-cell appearance.", 0.1, 0.0, 3.0},
  {"Perinuclear halos: clear perinuclear zones with condensation of the cytoplasm towards the thickened cell membrane.", 0.0, 0.0, 2.5},
  {"Raisinoid nuclei: irregular, wrinkled, hyperchromatic nuclei with notched contours, like raisins.", 0.0, 0.0, 2.5},
  {"Pale flocculent cytoplasm: abundant pale, finely reticulated cytoplasm with a cotton-like texture that is translucent but not optically clear.", 0.2, 0.0, 2.0},
  {"Eosinophilic chromophobe cells: smaller cells with dense, finely granular eosinophilic cytoplasm, admixed with the pale cells.", 0.2, 0.1, 2.0},
  {"Solid sheets with thick-walled vessels: broad solid sheets and large alveoli of tumour cells separated by incomplete septa containing thick-walled, hyalinized blood vessels.", 0.2, 0.0, 2.0},
  {"Binucleation: frequent binucleated and occasionally multinucleated tumour cells with wrinkled nuclei.", 0.0, 0.1, 1.5},
  {"Two-cell population: large pale cells at the periphery of nests with smaller eosinophilic cells towards the centre.", 0.0, 0.0, 1.5},
  {"Trabecular and tubulocystic areas: anastomosing trabeculae and small tubules of chromophobe cells in a scant stroma.", 0.0, 0.2, 1.0},
  // ---- shared by all subtypes -------------------------------------------------------------
  {"Normal renal tubules: non-neoplastic proximal tubules with eosinophilic cytoplasm and brush borders, and distal tubules with cleaner luminal borders.", 1.0, 1.0, 1.0},
  {"Glomeruli: round capillary tufts within Bowman's capsule, surrounded by the urinary space, in non-neoplastic renal cortex.", 0.8, 0.8, 0.8},
  {"Renal medulla: parallel collecting ducts and loops of Henle lined by cuboidal cells in a loose interstitium.", 0.4, 0.4, 0.4},
  {"Renal pelvis urothelium: multilayered urothelial lining of the collecting system over loose lamina propria.", 0.2, 0.2, 0.2},
  {"Fibrous stroma: collagenous connective tissue with scattered spindle-shaped fibroblasts and small vessels.", 1.0, 1.0, 1.0},
  {"Hyalinized scar: dense, hypocellular, glassy eosinophilic collagen forming a central scar within the tumour.", 0.6, 0.6, 0.8},
  {"Fibrous pseudocapsule: a thick fibrous band with hemosiderin and chronic inflammation enclosing a well-circumscribed tumour.", 0.5, 1.0, 0.5},
  {"Coagulative necrosis: ghost outlines of dead tumour cells with eosinophilic granular debris and nuclear dust, without viable nuclei.", 1.0, 1.2, 0.3},
  {"Hemorrhage: sheets of extravasated red blood cells disrupting the tissue architecture.", 1.2, 0.8, 0.5},
  {"Lymphocytic infiltrate: dense aggregates of small round lymphocytes with dark nuclei and scant cytoplasm.", 0.8, 0.8, 0.8},
  {"Large blood vessels: thick-walled arteries and veins with muscular walls and open lumina containing blood.", 0.8, 0.8, 0.8},
  {"Adipose tissue: perirenal or renal sinus fat with large, empty univacuolated adipocytes and thin septa.", 0.8, 0.8, 0.8},
  {"Sarcomatoid change: fascicles of markedly pleomorphic malignant spindle cells, a high-grade transformation that may arise in any subtype.", 0.3, 0.2, 0.2},
  {"Dystrophic calcification: irregular, deeply basophilic calcium deposits in scarred or necrotic areas.", 0.3, 0.5, 0.3},
  {"Atrophic kidney: sclerotic, hyalinized glomeruli and atrophic tubules with thyroid-like eosinophilic casts in fibrotic interstitium.", 0.4, 0.4, 0.4},
  {"Tissue fold and cautery artefact: overlapping folded tissue forming a dark band of double thickness, and smeared, elongated nuclei at cauterized edges.", 0.4, 0.4, 0.4},
};

const char* kClassNames[] = {"clear cell renal cell carcinoma", "papillary renal cell carcinoma",
                             "chromophobe renal cell carcinoma"};

const char* kBagLow[] = {
  "A whole-slide view of clear cell renal cell carcinoma: a variegated, golden-yellow tumour built of solid, alveolar and acinar nests of pale clear cells held in a delicate branching capillary network, with foci of hemorrhage, cystic change and necrosis, and a pushing border against compressed renal cortex.",
  "A whole-slide view of papillary renal cell carcinoma: a well-circumscribed tumour, often within a thick fibrous pseudocapsule, composed of papillary and tubulopapillary structures whose fibrovascular cores are filled with foamy macrophages, with hemosiderin deposits, psammoma bodies and necrotic areas.",
  "A whole-slide view of chromophobe renal cell carcinoma: a well-circumscribed tumour of solid sheets and broad alveoli of pale and eosinophilic cells, separated by incomplete septa with thick-walled hyalinized vessels, sometimes with a central scar and little necrosis or hemorrhage.",
};

const char* kBagHigh[] = {
  "At high magnification, clear cell renal cell carcinoma shows polygonal cells with optically clear cytoplasm and sharply outlined cell membranes, round nuclei of variable grade, and small nests each wrapped by thin-walled 'chicken-wire' capillaries.",
  "At high magnification, papillary renal cell carcinoma shows papillae with fibrovascular cores containing foamy macrophages and psammoma bodies, covered by cuboidal basophilic cells with scant cytoplasm or by columnar eosinophilic cells with pseudostratified nuclei and hemosiderin granules.",
  "At high magnification, chromophobe renal cell carcinoma shows large cells with plant-cell-like thick membranes, pale flocculent or eosinophilic cytoplasm, perinuclear halos and wrinkled raisinoid nuclei with frequent binucleation.",
};
// clang-format on

}  // namespace

const TaskPriors& rcc_priors() {
  static const TaskPriors p = [] {
    TaskPriors t;
    t.task = "rcc";
    for (const char* c : kClassNames) t.class_names.push_back(c);
    for (const Row& r : kEntities) {
      t.entities.push_back(r.text);
      t.class_weight.push_back({r.ccrcc, r.prcc, r.chrcc});
    }
    for (const char* s : kBagLow) t.bag_low.push_back(s);
    for (const char* s : kBagHigh) t.bag_high.push_back(s);
    return t;
  }();
  return p;
}

}  // namespace lm::data::detail
