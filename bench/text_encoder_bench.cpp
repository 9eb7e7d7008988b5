// Times a text encoder's encode() on a list of prompts.
//   text_encoder_bench ENCODER.safetensors TEXTS.json [repeats=3] [threads=omp default] [OUT.safetensors]
// One warm-up call, then `repeats` timed calls of encode(all texts); prints each call's time,
// and a final JSON line for scripts (bench/compare_text_encoder.py parses it). With OUT, the
// embeddings of the last call are written there ("embeddings", (K, D)).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/formats/safetensors.h"
#include "models/text/text_encoder.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s ENCODER.safetensors TEXTS.json [repeats] [threads] [OUT.safetensors]\n", argv[0]);
    return 2;
  }
  try {
    const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;
    if (argc > 4) omp_set_num_threads(std::max(1, std::atoi(argv[4])));
    std::ifstream in(argv[2], std::ios::binary);
    if (!in) throw std::runtime_error(std::string("cannot read ") + argv[2]);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::vector<std::string> texts = nlohmann::json::parse(ss.str()).get<std::vector<std::string>>();

    auto t_load = std::chrono::steady_clock::now();
    auto enc = lm::models::load_text_encoder(argv[1]);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
    lm::Tensor emb = enc->encode(texts);  // warm-up
    std::vector<double> secs;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      emb = enc->encode(texts);
      secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      std::printf("call %d: %.3f s\n", r, secs.back());
      std::fflush(stdout);
    }
    if (argc > 5)
      lm::data::write_safetensors(argv[5], std::vector<std::pair<std::string, lm::Tensor>>{{"embeddings", emb}});
    std::vector<double> sorted = secs;
    std::sort(sorted.begin(), sorted.end());
    const size_t n = sorted.size();
    const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    std::printf("{\"kind\": \"%s\", \"texts\": %zu, \"threads\": %d, \"load_s\": %.4f, \"median_s\": %.4f, \"min_s\": %.4f}\n",
                enc->kind().c_str(), texts.size(), omp_get_max_threads(), load_s, median, sorted.front());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "text_encoder_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
