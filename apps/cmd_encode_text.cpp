// `libramil encode-text`: prompt embeddings from a text encoder, as safetensors.
#include <filesystem>
#include <iostream>

#include "apps/commands.h"
#include "data/formats/safetensors.h"
#include "data/tables.h"
#include "models/text/text_encoder.h"

namespace lm::app {

namespace fs = std::filesystem;

Runner add_encode_text(CLI::App& app) {
  struct Flags {
    std::string encoder, texts, out;
    int threads = 0;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--encoder", f->encoder, "converted .safetensors or Hugging Face BERT folder (default: all-MiniLM-L6-v2)");
  app.add_option("--texts", f->texts, "JSON list of strings, or CSV with one quoted text per row")->required()->check(CLI::ExistingFile);
  app.add_option("--out", f->out, "output .safetensors with tensor 'embeddings' (K, Dt)")->required();
  app.add_option("--threads", f->threads)->capture_default_str();
  app.add_flag("--overwrite", f->overwrite, "replace an existing output file");
  return [f] {
    set_threads(f->threads);
    if (fs::exists(f->out) && !f->overwrite) throw std::runtime_error(f->out + " exists (pass --overwrite to replace it)");
    std::string ext = fs::path(f->texts).extension().string();
    std::vector<std::string> texts = ext == ".json" ? data::read_instance_prompts(f->texts) : data::read_bag_prompts_csv(f->texts);
    std::unique_ptr<models::TextEncoder> enc = models::load_text_encoder(f->encoder);
    Tensor e = enc->encode(texts);
    data::write_safetensors(f->out, std::vector<std::pair<std::string, Tensor>>{{"embeddings", e}}, {{"encoder", enc->id()}, {"texts", f->texts}});
    std::cout << texts.size() << " texts -> " << f->out << " (" << e.shape()[0] << " x " << e.shape()[1] << ")\n";
    return 0;
  };
}

}  // namespace lm::app
