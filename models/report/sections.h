// The sections of a run's report page, each returning HTML; each guards its own inputs (a
// missing file is a note, not an exception). Internal to models/report.
#pragma once
#include <string>
#include <vector>

#include "models/report/run_dir.h"

namespace lm::report {

// Accuracy / AUC / F1 per fold and their mean (sections.cpp).
std::string results_section(const Run& r);
// ROC curves and the confusion matrix from the test predictions (sections.cpp).
std::string roc_confusion_section(const Run& r);
// Training and validation curves per fold (sections.cpp).
std::string learning_section(const Run& r);
// Libra-MIL only: the spread of the instance weights and the transport's gradients per fold,
// from logs/transport_<fold>.csv (transport_section.cpp); "" for other models.
std::string transport_section(const Run& r);
// Several runs side by side: the table, paired per-fold differences, few-shot curves (sections.cpp).
std::string comparison_section(const std::vector<Run>& runs);
// Libra-MIL's explanations for up to max_slides test slides of fold 0: heatmaps (over the
// slide's thumbnail when slides_dir holds it), the transport plan, top patches (explain.cpp).
std::string explain_section(const Run& r, int max_slides, const std::string& slides_dir);

}  // namespace lm::report
