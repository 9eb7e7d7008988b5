// `libramil extract`: patches (from `libramil patch`) or folders of tiles -> a patch encoder on our
// own engine -> one features file per slide in TRIDENT's layout, which `train` reads. The
// pipeline lives in data/slides/feature_extraction.h, the encoders in models/patch_encoders/; this
// file parses flags, binds the encoder to the pipeline (one per device with --devices) and
// prints progress. docs/extract.md.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "apps/commands.h"
#include "data/slides/feature_extraction.h"
#include "models/patch_encoders/patch_encoder.h"

namespace lm::app {

namespace {

std::pair<int, int> parse_shard(const std::string& s) {
  const auto slash = s.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("");
    size_t a = 0, b = 0;
    const int i = std::stoi(s.substr(0, slash), &a), n = std::stoi(s.substr(slash + 1), &b);
    if (a != slash || b != s.size() - slash - 1) throw std::invalid_argument("");
    return {i, n};
  } catch (const std::exception&) {
    throw std::invalid_argument("--shard must be I/N (e.g. 0/4), got '" + s + "'");
  }
}

std::vector<int> parse_devices(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) {
    try {
      size_t used = 0;
      const int d = std::stoi(t, &used);
      if (used != t.size() || d < 0) throw std::invalid_argument("");
      out.push_back(d);
    } catch (const std::exception&) {
      throw std::invalid_argument("--devices must be GPU indices like 0,1,2, got '" + s + "'");
    }
  }
  if (out.empty()) throw std::invalid_argument("--devices must list at least one GPU index");
  return out;
}

// The folder name part of an encoder: a known name as given, a file by its stem.
std::string encoder_label(const std::string& name_or_path) {
  for (const auto& k : models::known_patch_encoders())
    if (k == name_or_path) return k;
  return std::filesystem::path(name_or_path).stem().string();
}

}  // namespace

Runner add_extract(CLI::App& app) {
  struct Flags {
    slides::ExtractOptions opt;
    std::string encoder = "efficientnet-lite0", device = "cpu", devices, shard = "0/1";
    int threads = 0;
    bool keep_going = false;
  };
  auto f = std::make_shared<Flags>();
  auto& o = f->opt;
  app.add_option("--slides", o.slides, "slide files and / or folders of slides (with --patches)")->expected(1, -1);
  app.add_option("--patches", o.patches,
                 "`libramil patch`'s --out folder (or one <mag>x_<ps>px_<ov>px_overlap folder inside it)");
  app.add_option("--tiles", o.tiles,
                 "instead of --slides: a folder of tile folders (one bag each; PNG / JPEG / BMP, square, one size per bag; "
                 "coordinates from names ending in _X_Y)");
  app.add_option("--encoder", f->encoder,
                 "a known patch encoder (efficientnet-lite0, installed by tools/setup.sh) or a converted .safetensors file "
                 "(tools/convert_weights.py)")
      ->capture_default_str();
  app.add_option("--out", o.out,
                 "output folder: features go to OUT/<config>/features_<encoder>/<slide>.h5 (tiles: OUT/features_<encoder>/); "
                 "slides finished there are skipped")
      ->required();
  app.add_option("--batch", o.batch, "patches per encoder call")->capture_default_str();
  app.add_option("--device", f->device, "cpu | cuda | cuda:<index>: where the encoder runs")->capture_default_str();
  app.add_option("--devices", f->devices, "GPU indices (e.g. 0,1,2,3): one encoder per GPU, slides shared among them");
  app.add_option("--threads", f->threads, "CPU threads of the encoder (0 = one per core)")->capture_default_str();
  app.add_option("--readers", o.readers, "threads decoding patches while the encoder runs")->capture_default_str();
  app.add_option("--shard", f->shard, "I/N: process only share I (0-based) of N of the sorted slide list (cluster job arrays)")
      ->capture_default_str();
  app.add_flag("--overwrite", o.overwrite, "redo slides whose features file exists (it is replaced only when the new one is complete)");
  app.add_flag("--keep-going", f->keep_going, "exit 0 even when some slides failed (failures are still printed)");
  return [f] {
    auto& o = f->opt;
    std::tie(o.shard_index, o.shard_count) = parse_shard(f->shard);
    if (o.readers < 1) throw std::invalid_argument("--readers must be at least 1");
    set_threads(f->threads);
    // One worker per device; with --devices D GPUs, worker d takes share I + N * d of N * D, which
    // together are exactly share I of N.
    std::vector<Device> devices;
    if (!f->devices.empty())
      for (int d : parse_devices(f->devices)) devices.push_back(Device::parse("cuda:" + std::to_string(d)));
    else devices.push_back(Device::parse(f->device));
    std::vector<std::unique_ptr<models::PatchEncoder>> encoders;
    for (const Device& d : devices) encoders.push_back(models::load_patch_encoder(f->encoder, d));
    o.encoder_name = encoder_label(f->encoder);
    o.feature_dim = encoders[0]->feature_dim();
    const bool tty = isatty(STDERR_FILENO);
    std::cerr << "extract: encoder " << encoders[0]->name() << " (" << encoders[0]->path() << ", " << o.feature_dim << "-d, "
              << encoders[0]->preprocess().input_size << " px) on " << devices.size() << " device"
              << (devices.size() > 1 ? "s" : "") << " (" << devices[0].str() << (devices.size() > 1 ? ", ..." : "") << ")"
              << std::endl;
    std::mutex print;
    slides::ExtractProgress progress;
    progress.line = [&](const std::string& line) {
      std::lock_guard<std::mutex> lock(print);
      std::cerr << (tty ? "\r\033[K" : "") << "extract " << line << std::endl;
    };
    if (tty && devices.size() == 1)
      progress.patches = [&](const std::string& slide, int64_t done, int64_t total, double rate) {
        std::lock_guard<std::mutex> lock(print);
        std::cerr << "\r\033[Kextract " << slide << ": " << done << "/" << total << " patches, " << int64_t(rate) << " patches/s"
                  << std::flush;
      };
    std::vector<std::vector<slides::ExtractRecord>> results(devices.size());
    std::vector<std::string> errors(devices.size());
    auto work = [&](size_t d) {
      try {
        slides::ExtractOptions od = o;
        od.shard_index = o.shard_index + o.shard_count * int(d);
        od.shard_count = o.shard_count * int(devices.size());
        models::PatchEncoder* enc = encoders[d].get();
        enc->batch_size = o.batch;
        results[d] = slides::run_extraction(
            od, [enc](const std::vector<const uint8_t*>& rgb, int64_t h, int64_t w) { return enc->encode_images(rgb, h, w); },
            progress);
      } catch (const std::exception& e) {
        errors[d] = e.what();
      }
    };
    std::vector<std::thread> pool;
    for (size_t d = 1; d < devices.size(); ++d) pool.emplace_back(work, d);
    work(0);
    for (auto& t : pool) t.join();
    for (const auto& e : errors)
      if (!e.empty()) throw std::runtime_error(e);
    int ok = 0, failed = 0, skipped = 0;
    int64_t patches = 0;
    double seconds = 0;
    for (const auto& rs : results)
      for (const auto& r : rs) {
        if (r.skipped) ++skipped;
        else if (r.status == "ok") ++ok, patches += r.patches, seconds += r.seconds;
        else ++failed;
      }
    std::cout << "extract: " << ok + failed + skipped << " slides (" << ok << " done now, " << skipped << " done before, "
              << failed << " failed), " << patches << " patches encoded";
    if (ok) std::cout << " at " << int64_t(patches / std::max(1e-9, seconds) + 0.5) << " patches/s";
    std::cout << " -> " << o.out << "\n";
    if (failed) {
      std::cerr << "libramil: error: " << failed << " slide" << (failed > 1 ? "s" : "") << " failed (see above)"
                << (f->keep_going ? "; --keep-going: exit 0" : "") << std::endl;
      return f->keep_going ? 0 : 1;
    }
    return 0;
  };
}

}  // namespace lm::app
