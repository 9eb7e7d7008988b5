// The `libramil extract` job (data/slides/feature_extraction.h): finding each slide's patches
// file, reading the patches on reader threads into a bounded queue of batches, encoding the
// batches in order, and writing the features file atomically.
#include "data/slides/feature_extraction.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "data/atomic_file.h"
#include "data/feature_bag.h"
#include "data/formats/hdf5_reader.h"
#include "data/formats/hdf5_writer.h"
#include "data/slides/image_io.h"
#include "data/slides/patching.h"

namespace lm::slides {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One slide's work: where its pixels come from and where its features go.
struct Job {
  std::string name, output;
  std::vector<Coord> coords;
  // A slide: read `read_size` squares at `level`; tiles: decode the files.
  std::string slide_path;
  ReadPlan plan;
  PatchCoords patches;
  std::vector<std::string> tile_files;
  std::string source;  // the patches file, or the tile folder
};

// Every <config>/patches/<slide>_patches.h5 candidate under the --patches folder.
std::string find_patches_file(const std::string& dir, const std::string& slide) {
  const std::string file = slide + "_patches.h5";
  std::error_code ec;
  if (fs::is_regular_file(fs::path(dir) / "patches" / file, ec)) return (fs::path(dir) / "patches" / file).string();
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && fs::is_regular_file(e.path() / "patches" / file)) found.push_back((e.path() / "patches" / file).string());
  std::sort(found.begin(), found.end());
  if (found.empty())
    throw std::runtime_error(dir + ": no patches file for slide '" + slide + "' (expected <config>/patches/" + file +
                             " as `libramil patch` writes it)");
  if (found.size() > 1)
    throw std::runtime_error(dir + ": slide '" + slide + "' has patches under several configurations (" + found[0] + ", " +
                             found[1] + "): give --patches DIR/<config>");
  return found[0];
}

// The features file is finished when it holds a features row for every coordinate.
bool finished(const std::string& output, int64_t n) {
  std::error_code ec;
  if (!fs::is_regular_file(output, ec)) return false;
  try {
    return data::probe_feature_bag(output).n == n;
  } catch (const std::exception&) {
    return false;
  }
}

// Reads patch `i` of the job as an RGB image of the job's read size.
RgbImage read_patch(const Job& job, const Slide* slide, int64_t i) {
  if (slide) return slide->read_region(job.plan.level, job.coords[i][0], job.coords[i][1], job.plan.read_size, job.plan.read_size);
  RgbImage img = read_image_file(job.tile_files[i]);
  if (img.width != job.plan.read_size || img.height != job.plan.read_size)
    throw std::runtime_error(job.tile_files[i] + ": tile is " + std::to_string(img.width) + " x " + std::to_string(img.height) +
                             " pixels, but the bag's first tile is " + std::to_string(job.plan.read_size) + " x " +
                             std::to_string(job.plan.read_size) + " (every tile of a bag must have one square size)");
  return img;
}

// Runs the encoder over the job's patches with `readers` decoding threads; returns (N, D) floats.
// `slide` is null for a tile bag.
std::vector<float> encode_job(const Job& job, const Slide* slide, const ExtractOptions& o, const EncodeFn& encode,
                              const ExtractProgress& progress, ExtractRecord& rec) {
  const int64_t N = int64_t(job.coords.size()), B = o.batch, D = o.feature_dim;
  const int64_t nb = (N + B - 1) / B, ahead = 2 * int64_t(std::max(1, o.readers)) + 1;
  std::vector<float> feats(size_t(N * D));
  std::mutex m;
  std::condition_variable cv;
  std::map<int64_t, std::vector<RgbImage>> ready;
  int64_t claimed = 0, consumed = 0;
  bool stop = false;
  std::string error;
  auto reader = [&] {
    for (;;) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return stop || claimed >= nb || claimed - consumed < ahead; });
        if (stop || claimed >= nb) return;
        b = claimed++;
      }
      std::vector<RgbImage> imgs;
      try {
        for (int64_t i = b * B; i < std::min(N, (b + 1) * B); ++i) imgs.push_back(read_patch(job, slide, i));
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(m);
        if (error.empty()) error = e.what();
        stop = true;
        cv.notify_all();
        return;
      }
      std::lock_guard<std::mutex> lock(m);
      ready[b] = std::move(imgs);
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  auto join = [&] {
    {
      std::lock_guard<std::mutex> lock(m);
      stop = true;
    }
    cv.notify_all();
    for (auto& t : pool) t.join();
    pool.clear();
  };
  for (int r = 0; r < std::max(1, o.readers); ++r) pool.emplace_back(reader);
  const auto t0 = Clock::now();
  try {
    for (int64_t b = 0; b < nb; ++b) {
      std::vector<RgbImage> imgs;
      const auto tw = Clock::now();
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return stop || ready.count(b); });
        if (!ready.count(b)) throw std::runtime_error(error.empty() ? "reading stopped" : error);
        imgs = std::move(ready[b]);
        ready.erase(b);
        consumed = b + 1;
      }
      cv.notify_all();
      rec.seconds_read += since(tw);
      const auto te = Clock::now();
      std::vector<const uint8_t*> ptrs;
      for (const auto& im : imgs) ptrs.push_back(im.rgb.data());
      Tensor out = encode(ptrs, job.plan.read_size, job.plan.read_size);
      if (out.device() != Device::cpu()) out = out.to(Device::cpu());
      if (out.dtype() != DType::F32) out = out.to(DType::F32);
      out = out.contiguous();
      if (out.shape() != Shape{int64_t(imgs.size()), D})
        throw std::runtime_error("the encoder returned " + out.str() + " for " + std::to_string(imgs.size()) +
                                 " patches; expected (" + std::to_string(imgs.size()) + ", " + std::to_string(D) + ")");
      const float* src = out.data<float>();
      for (int64_t k = 0; k < int64_t(imgs.size()) * D; ++k)
        if (!std::isfinite(src[k]))
          throw std::runtime_error("the encoder produced a non-finite feature for patch " + std::to_string(b * B + k / D) +
                                   " (" + job.source + ")");
      std::copy(src, src + imgs.size() * D, feats.begin() + b * B * D);
      rec.seconds_encode += since(te);
      const int64_t done = std::min(N, (b + 1) * B);
      if (progress.patches) progress.patches(job.name, done, N, double(done) / std::max(1e-9, since(t0)));
    }
  } catch (...) {
    join();
    throw;
  }
  join();
  return feats;
}

void write_features(const Job& job, const ExtractOptions& o, const std::vector<float>& feats) {
  const uint64_t N = job.coords.size();
  std::vector<int64_t> flat;
  flat.reserve(N * 2);
  for (const auto& c : job.coords) flat.push_back(c[0]), flat.push_back(c[1]);
  fs::create_directories(fs::path(job.output).parent_path());
  data::H5Writer w(job.output);
  w.dataset_f32("features", {N, uint64_t(o.feature_dim)}, feats.data());
  w.dataset_i64("coords", {N, 2}, flat.data());
  if (!job.slide_path.empty()) {
    w.attr_i64("coords", "patch_size", job.patches.patch_size);
    w.attr_i64("coords", "patch_size_level0", job.patches.patch_size_level0);
    if (job.patches.target_mag > 0) w.attr_f64("coords", "target_magnification", job.patches.target_mag);
    w.attr_string("/", "slide", job.slide_path);
  } else {
    w.attr_i64("coords", "patch_size", job.plan.read_size);
    w.attr_string("/", "tiles", job.source);
  }
  w.attr_string("coords", "name", job.name);
  w.attr_string("/", "encoder", o.encoder_name);
  w.attr_string("/", "written_by", "libramil extract");
  w.commit();
}

// The jobs of this shard: slides with their patches files, or tile bags.
std::vector<Job> make_jobs(const ExtractOptions& o) {
  std::vector<Job> jobs;
  if (!o.tiles.empty()) {
    for (const std::string& bag : shard_of(list_tile_bags(o.tiles), o.shard_index, o.shard_count)) {
      Job j;
      j.name = fs::path(bag).filename().string();
      j.source = bag;
      j.output = (fs::path(features_folder(o, "")) / (j.name + ".h5")).string();
      jobs.push_back(std::move(j));
    }
    return jobs;
  }
  for (const std::string& s : shard_of(list_slides(o.slides), o.shard_index, o.shard_count)) {
    Job j;
    j.name = slide_name(s);
    j.slide_path = s;
    jobs.push_back(std::move(j));
  }
  return jobs;
}

// Fills the job's coordinates and read plan (reading the slide's header or the bag's file names);
// throws one line naming the file that is wrong.
void prepare(Job& j, const ExtractOptions& o) {
  if (j.slide_path.empty()) {
    j.tile_files = list_tiles(j.source);
    if (j.tile_files.empty()) throw std::runtime_error(j.source + ": no PNG / JPEG / BMP tiles in this folder");
    bool named = true;
    for (size_t i = 0; i < j.tile_files.size(); ++i) {
      Coord c{int64_t(i), 0};
      if (named && !coords_from_tile_name(j.tile_files[i], c)) named = false;
      j.coords.push_back(c);
    }
    if (!named)  // one name without coordinates: number them all, so coordinates never mix kinds
      for (size_t i = 0; i < j.coords.size(); ++i) j.coords[i] = {int64_t(i), 0};
    const RgbImage first = read_image_file(j.tile_files[0]);
    if (first.width != first.height)
      throw std::runtime_error(j.tile_files[0] + ": tile is " + std::to_string(first.width) + " x " +
                               std::to_string(first.height) + " pixels; tiles must be square");
    j.plan = ReadPlan{0, first.width};
    return;
  }
  j.source = find_patches_file(o.patches, j.name);
  j.patches = read_patch_coords(j.source);
  j.coords = j.patches.coords;
  const std::string config = fs::path(j.source).parent_path().parent_path().filename().string();
  j.output = (fs::path(features_folder(o, config)) / (j.name + ".h5")).string();
}

}  // namespace

PatchCoords read_patch_coords(const std::string& path) {
  data::H5Reader h(path);
  PatchCoords pc;
  pc.path = path;
  const auto shape = h.shape("coords");
  if (shape.size() != 2 || shape[1] != 2)
    throw std::runtime_error(path + ": dataset 'coords' must have shape (N, 2), got " + std::to_string(shape.size()) + " dims");
  if (shape[0] == 0) throw std::runtime_error(path + ": no patches (coords has 0 rows)");
  const auto flat = h.read_i64("coords");
  for (size_t i = 0; i < flat.size(); i += 2) pc.coords.push_back({flat[i], flat[i + 1]});
  const auto ps = h.attr_number("coords", "patch_size");
  const auto p0 = h.attr_number("coords", "patch_size_level0");
  if (!ps || !p0) throw std::runtime_error(path + ": 'coords' lacks the patch_size / patch_size_level0 attributes `patch` writes");
  if (!(*ps >= 1 && *ps <= 65536) || !(*p0 >= 1 && *p0 <= 1 << 20))
    throw std::runtime_error(path + ": implausible patch_size " + std::to_string(*ps) + " / patch_size_level0 " + std::to_string(*p0));
  pc.patch_size = int64_t(*ps), pc.patch_size_level0 = int64_t(*p0);
  pc.target_mag = h.attr_number("coords", "target_magnification").value_or(0);
  return pc;
}

ReadPlan plan_read(const std::vector<LevelInfo>& levels, int64_t patch_size_level0, int64_t patch_size) {
  const double want = double(patch_size_level0) / double(patch_size);
  ReadPlan p;
  for (int l = 0; l < int(levels.size()); ++l)
    if (levels[l].downsample <= want * 1.01 && levels[l].downsample >= levels[p.level].downsample) p.level = l;
  p.read_size = std::max<int64_t>(1, std::llround(double(patch_size_level0) / levels[p.level].downsample));
  return p;
}

std::string features_folder(const ExtractOptions& o, const std::string& config) {
  fs::path p(o.out);
  if (!config.empty()) p /= config;
  return (p / ("features_" + o.encoder_name)).string();
}

std::vector<ExtractRecord> run_extraction(const ExtractOptions& o, const EncodeFn& encode, const ExtractProgress& progress) {
  if (o.batch < 1) throw std::invalid_argument("--batch must be at least 1");
  if (o.feature_dim < 1) throw std::invalid_argument("the encoder's feature width must be positive");
  if (o.tiles.empty() == o.slides.empty()) throw std::invalid_argument("give either --slides (with --patches) or --tiles");
  if (!o.tiles.empty() && !fs::is_directory(o.tiles)) throw std::invalid_argument(o.tiles + ": --tiles is not a folder");
  if (o.tiles.empty() && !fs::is_directory(o.patches))
    throw std::invalid_argument((o.patches.empty() ? std::string("(none)") : o.patches) + ": --patches must be `libramil patch`'s output folder");
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    throw std::invalid_argument("--shard I/N needs 0 <= I < N");
  std::vector<Job> jobs = make_jobs(o);
  std::vector<ExtractRecord> records;
  for (size_t k = 0; k < jobs.size(); ++k) {
    Job& j = jobs[k];
    ExtractRecord rec;
    rec.slide = j.name;
    const auto t0 = Clock::now();
    try {
      prepare(j, o);
      rec.output = j.output;
      rec.patches = int64_t(j.coords.size());
      if (!o.overwrite && finished(j.output, rec.patches)) {
        rec.status = "ok", rec.skipped = true;
      } else {
        std::unique_ptr<Slide> slide;
        if (!j.slide_path.empty()) {
          slide = std::make_unique<Slide>(j.slide_path);
          const int64_t P0 = j.patches.patch_size_level0;
          for (const Coord& c : j.coords)
            if (c[0] < 0 || c[1] < 0 || c[0] + P0 > slide->width() || c[1] + P0 > slide->height())
              throw std::runtime_error(j.source + ": patch at (" + std::to_string(c[0]) + ", " + std::to_string(c[1]) +
                                       ") of side " + std::to_string(P0) + " lies outside " + j.slide_path + " (" +
                                       std::to_string(slide->width()) + " x " + std::to_string(slide->height()) +
                                       "): the patches file belongs to another slide");
          j.plan = plan_read(slide->levels(), P0, j.patches.patch_size);
        }
        const std::vector<float> feats = encode_job(j, slide.get(), o, encode, progress, rec);
        write_features(j, o, feats);
        rec.status = "ok";
      }
    } catch (const std::exception& e) {
      rec.status = "failed";
      rec.reason = e.what();
    }
    rec.seconds = since(t0);
    if (progress.line) {
      std::string line = "[" + std::to_string(k + 1) + "/" + std::to_string(jobs.size()) + "] " + rec.slide + ": ";
      char buf[160];
      if (rec.skipped) line += "done before (" + std::to_string(rec.patches) + " patches), skipped";
      else if (rec.status == "ok") {
        std::snprintf(buf, sizeof buf, "%lld patches, %.1f s (%.1f patches/s; encoder waited %.1f s for pixels)",
                      (long long)rec.patches, rec.seconds, rec.patches / std::max(1e-9, rec.seconds), rec.seconds_read);
        line += buf;
      } else line += "FAILED: " + rec.reason;
      progress.line(line);
    }
    records.push_back(std::move(rec));
  }
  return records;
}

std::vector<std::string> list_tiles(const std::string& bag_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(bag_dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> list_tile_bags(const std::string& dir) {
  if (!list_tiles(dir).empty()) return {dir};
  std::vector<std::string> bags;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && !list_tiles(e.path().string()).empty()) bags.push_back(e.path().string());
  std::sort(bags.begin(), bags.end());
  if (bags.empty()) throw std::invalid_argument(dir + ": no tiles (PNG / JPEG / BMP files) in it or in its sub-folders");
  return bags;
}

bool coords_from_tile_name(const std::string& file, Coord& out) {
  const std::string stem = fs::path(file).stem().string();
  // The last two runs of digits, separated by '_' (and the second preceded by '_' or the start).
  const size_t u = stem.rfind('_');
  if (u == std::string::npos || u + 1 >= stem.size()) return false;
  const std::string ys = stem.substr(u + 1);
  const size_t v = stem.rfind('_', u - (u > 0 ? 1 : 0));
  const std::string xs = u == 0 ? "" : stem.substr(v == std::string::npos ? 0 : v + 1, u - (v == std::string::npos ? 0 : v + 1));
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 12 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
  };
  if (!digits(xs) || !digits(ys)) return false;
  out = {std::stoll(xs), std::stoll(ys)};
  return true;
}

}  // namespace lm::slides
