// The keys `train` writes in a run's config.json and the JSON type of each, for readers that
// take the file as it is (the report): a value edited to another type ("epochs": "ten") is
// set aside with a one-line description instead of surfacing as a raw JSON exception later.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lm::train {

// Removes from `config` (a JSON object) every known key whose value has another type than
// train writes, and "inputs" when it is not an object or its entries that are not strings;
// returns one description per removal, e.g. "'epochs' is "ten", expected an integer".
// Unknown keys are left alone.
std::vector<std::string> drop_mistyped_config_keys(nlohmann::json& config);

}  // namespace lm::train
