// Language priors for CAMELYON16 (sentinel lymph nodes of breast cancer patients: normal /
// tumour = metastasis present), written in this repository: 29 instance priors ("Entity:
// morphological description.") with the simulator's composition per class, and the class
// descriptions at two scales. In the simulator a tumour slide is a normal node plus a small
// focal share (1-8%) of patches drawn from the entities weighted in the tumour column.
#include "data/sim/simulate.h"

namespace lm::data::detail {

namespace {

struct Row {
  const char* text;
  double normal;  // abundance in normal nodes (and in the non-tumour part of tumour slides)
  double tumour;  // composition of the metastatic foci (simulator only)
};

// clang-format off
const Row kEntities[] = {
  // ---- normal lymph node ------------------------------------------------------------------
  {"Primary lymphoid follicles: rounded cortical aggregates of densely packed small mature B lymphocytes without a germinal centre.", 1.5, 0.0},
  {"Germinal centres: pale centres of secondary follicles with centroblasts, centrocytes and tingible-body macrophages in a starry-sky pattern.", 1.2, 0.0},
  {"Mantle zone: a dark crescent of small, tightly packed lymphocytes surrounding a germinal centre.", 1.0, 0.0},
  {"Paracortex: the interfollicular T-cell zone of small lymphocytes with scattered larger immunoblasts and interdigitating dendritic cells.", 2.0, 0.0},
  {"High endothelial venules: postcapillary venules with plump cuboidal endothelium and lymphocytes migrating through their walls.", 0.8, 0.0},
  {"Medullary cords: cords of lymphocytes, plasma cells and macrophages between the medullary sinuses.", 1.2, 0.0},
  {"Medullary sinuses: anastomosing endothelium-lined channels with loose lymph, macrophages and scattered lymphocytes.", 1.0, 0.0},
  {"Subcapsular sinus: the endothelium-lined space beneath the capsule with scattered macrophages and lymphocytes.", 0.7, 0.0},
  {"Sinus histiocytosis: sinuses distended by sheets of histiocytes with abundant pale pink cytoplasm and bland oval nuclei, a benign mimic of metastasis.", 0.6, 0.0},
  {"Lymph node capsule: a thin band of dense collagenous connective tissue enclosing the node, crossed by afferent lymphatics.", 1.0, 0.0},
  {"Perinodal adipose tissue: mature fat with large, empty univacuolated adipocytes and thin fibrous septa surrounding the node.", 2.0, 0.0},
  {"Fatty hilum: adipose tissue replacing the nodal hilum and medulla, with islands of residual lymphoid tissue.", 0.8, 0.0},
  {"Hilar blood vessels: thick-walled arteries and veins with muscular walls at the nodal hilum.", 0.7, 0.0},
  {"Pigment-laden macrophages: sinus histiocytes containing brown hemosiderin or black carbon pigment.", 0.3, 0.0},
  {"Nodal fibrosis: dense hyalinized collagen replacing lymphoid tissue in an involuted node.", 0.5, 0.0},
  {"Hemorrhage: extravasated red blood cells filling sinuses and the perinodal tissue.", 0.4, 0.0},
  {"Epithelioid granulomas: compact aggregates of epithelioid histiocytes with occasional multinucleated giant cells.", 0.15, 0.0},
  {"Cautery and crush artefact: smeared, elongated hyperchromatic lymphocyte nuclei and distorted tissue at the cut edge.", 0.4, 0.0},
  {"Tissue fold and air bubble artefact: folded tissue forming a dark band of double thickness, and empty round spaces from trapped air.", 0.3, 0.0},
  // ---- metastatic breast carcinoma ------------------------------------------------------
  {"Metastatic carcinoma clusters: cohesive clusters and sheets of large pleomorphic epithelial cells with vesicular nuclei and prominent nucleoli, foreign to the lymph node.", 0.0, 3.0},
  {"Glandular metastasis: metastatic ductal carcinoma forming tubules and cribriform glands within the lymphoid tissue.", 0.0, 1.5},
  {"Subcapsular sinus metastasis: clusters of atypical epithelial tumour cells lodged in the subcapsular sinus.", 0.0, 1.5},
  {"Isolated tumour cells: single large atypical epithelial cells or tiny clusters no larger than 0.2 mm scattered in the sinuses and parenchyma.", 0.0, 1.0},
  {"Metastatic lobular carcinoma: discohesive, dispersed or single-file small tumour cells with intracytoplasmic vacuoles, easily mistaken for histiocytes.", 0.0, 0.8},
  {"Tumour necrosis: central eosinophilic necrotic debris with nuclear dust within a large metastatic deposit.", 0.0, 0.7},
  {"Desmoplastic reaction: reactive fibroblastic stroma with loose collagen surrounding metastatic tumour nests.", 0.0, 1.0},
  {"Mitotically active tumour cells: atypical mitotic figures and apoptotic bodies among hyperchromatic metastatic carcinoma cells.", 0.0, 0.8},
  {"Lymphovascular tumour emboli: aggregates of carcinoma cells within endothelium-lined lymphatic or blood vessel spaces.", 0.0, 0.5},
  {"Extranodal extension: carcinoma cells breaching the capsule and infiltrating the perinodal adipose tissue.", 0.0, 0.3},
};

const char* kClassNames[] = {"normal lymph node", "lymph node with metastatic breast carcinoma"};

const char* kBagLow[] = {
  "A whole-slide view of a normal lymph node: an encapsulated, bean-shaped organ with cortical lymphoid follicles and germinal centres, a paracortex, medullary cords and sinuses, a hilum with vessels and surrounding adipose tissue, and no foreign epithelial cells.",
  "A whole-slide view of a lymph node with metastatic breast carcinoma: preserved nodal architecture of follicles, paracortex and sinuses, interrupted by small foci or larger deposits of carcinoma, often beginning in the subcapsular sinus, that occupy only a small part of the node.",
};

const char* kBagHigh[] = {
  "At high magnification, a normal lymph node shows small round mature lymphocytes, germinal centre cells with tingible-body macrophages, bland sinus histiocytes with pale cytoplasm, plasma cells and endothelium, without atypical epithelial cells.",
  "At high magnification, metastatic breast carcinoma in a lymph node shows cohesive clusters of large epithelial cells with abundant cytoplasm, pleomorphic vesicular nuclei, prominent nucleoli, mitoses and gland formation, sharply contrasting with the surrounding small lymphocytes.",
};
// clang-format on

}  // namespace

const TaskPriors& camelyon16_priors() {
  static const TaskPriors p = [] {
    TaskPriors t;
    t.task = "camelyon16";
    for (const char* c : kClassNames) t.class_names.push_back(c);
    for (const Row& r : kEntities) {
      t.entities.push_back(r.text);
      t.class_weight.push_back({r.normal, r.tumour});
    }
    for (const char* s : kBagLow) t.bag_low.push_back(s);
    for (const char* s : kBagHigh) t.bag_high.push_back(s);
    t.focal_class = 1;
    t.focal_base_class = 0;
    t.focal_min = 0.01;
    t.focal_max = 0.08;
    return t;
  }();
  return p;
}

}  // namespace lm::data::detail
