// The `libramil patch` job (data/slides/patching.h): listing and sharding slides, one slide's
// pipeline (magnification, thumbnail, tissue, grid, outputs), resume records and summary.csv.
#include "data/slides/patching.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "data/atomic_file.h"
#include "data/slides/image_io.h"
#include "data/slides/patch_outputs.h"
#include "data/slides/slide.h"
#include "data/slides/thumbnail.h"
#include "data/tables.h"
#include "data/text_util.h"

namespace lm::slides {
namespace fs = std::filesystem;

namespace {
using data::csv_field;
using data::trim;


std::string fmt(double v, int digits = 6) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

// Removes what a killed run left of `name` in `dir`: its temporary files (data/atomic_file.h).
void remove_leftovers(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (data::atomic_target(e.path().filename().string()) == name) fs::remove(e.path(), ec);
}

struct OutputPaths {
  fs::path thumbnail, contours, geojson, coords, record;
};

OutputPaths output_paths(const PatchOptions& o, const std::string& name) {
  const fs::path out(o.out), cfg = out / patch_config_name(o.mag, o.patch_size, o.overlap);
  return {out / "thumbnails" / (name + ".jpg"), out / "contours" / (name + ".jpg"),
          out / "contours_geojson" / (name + ".geojson"), cfg / "patches" / (name + "_patches.h5"),
          cfg / "status" / (name + ".json")};
}

nlohmann::json to_json(const SlideRecord& r) {
  return {{"slide", r.slide}, {"path", r.path}, {"status", r.status}, {"reason", r.reason}, {"mpp", r.mpp},
          {"mpp_source", r.mpp_source}, {"tissue_area_mm2", r.tissue_area_mm2}, {"patches", r.patches},
          {"seconds", r.seconds}, {"seconds_read", r.seconds_read}, {"seconds_segment", r.seconds_segment},
          {"seconds_tile", r.seconds_tile}, {"seconds_write", r.seconds_write}};
}

SlideRecord from_json(const nlohmann::json& j) {
  SlideRecord r;
  r.slide = j.at("slide").get<std::string>();
  r.path = j.at("path").get<std::string>();
  r.status = j.at("status").get<std::string>();
  r.reason = j.at("reason").get<std::string>();
  r.mpp = j.at("mpp").get<double>();
  r.mpp_source = j.at("mpp_source").get<std::string>();
  r.tissue_area_mm2 = j.at("tissue_area_mm2").get<double>();
  r.patches = j.at("patches").get<int64_t>();
  r.seconds = j.at("seconds").get<double>();
  r.seconds_read = j.value("seconds_read", 0.0);
  r.seconds_segment = j.value("seconds_segment", 0.0);
  r.seconds_tile = j.value("seconds_tile", 0.0);
  r.seconds_write = j.value("seconds_write", 0.0);
  return r;
}

// A slide is done when its coordinates file exists and its record says ok.
bool read_done_record(const OutputPaths& p, SlideRecord& r) {
  std::error_code ec;
  if (!fs::exists(p.coords, ec) || !fs::exists(p.record, ec)) return false;
  try {
    std::ifstream f(p.record);
    r = from_json(nlohmann::json::parse(f));
    return r.status == "ok";
  } catch (const std::exception&) {
    return false;  // an unreadable record: the slide is redone
  }
}

// summary.csv from every record under DIR/*/status/, rewritten under an exclusive lock so that
// shards finishing at the same time do not interleave.
void write_summary(const PatchOptions& o) {
  const fs::path out(o.out);
  const std::string lock_path = (out / ".summary.lock").string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::flock(fd, LOCK_EX);
  // Under the lock no other shard is writing summary.csv: a temporary of it is a dead run's.
  remove_leftovers(out, "summary.csv");
  std::vector<std::pair<std::string, SlideRecord>> rows;  // (config, record)
  std::error_code ec;
  for (const auto& cfg : fs::directory_iterator(out, ec)) {
    const fs::path status = cfg.path() / "status";
    if (!cfg.is_directory() || !fs::is_directory(status, ec)) continue;
    for (const auto& e : fs::directory_iterator(status, ec)) {
      if (e.path().extension() != ".json" || e.path().filename().string()[0] == '.') continue;
      try {
        std::ifstream f(e.path());
        rows.emplace_back(cfg.path().filename().string(), from_json(nlohmann::json::parse(f)));
      } catch (const std::exception&) {
      }
    }
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second.slide < b.second.slide;
  });
  std::ostringstream s;
  s << "slide,patch_config,mpp,mpp_source,tissue_area_mm2,patches,seconds,status,reason\n";
  for (const auto& [cfg, r] : rows)
    s << csv_field(r.slide) << ',' << cfg << ',' << (r.mpp > 0 ? fmt(r.mpp) : "") << ',' << r.mpp_source << ','
      << fmt(r.tissue_area_mm2) << ',' << r.patches << ',' << fmt(r.seconds, 4) << ',' << r.status << ','
      << csv_field(r.reason) << '\n';
  try {
    data::write_file_atomic((out / "summary.csv").string(), s.str());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    throw;
  }
  if (fd >= 0) ::close(fd);
}

}  // namespace

void check_patch_options(const PatchOptions& o) {
  auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  if (o.out.empty()) bad("--out: an output folder is required");
  if (o.inputs.empty()) bad("--slides: give at least one slide file or folder");
  if (!(o.mag > 0) || !std::isfinite(o.mag)) bad("--mag must be a positive magnification, got " + fmt(o.mag));
  if (o.patch_size < 16 || o.patch_size > 8192) bad("--patch-size must be 16..8192, got " + std::to_string(o.patch_size));
  if (o.overlap < 0 || o.overlap >= o.patch_size)
    bad("--overlap must be 0..patch size - 1, got " + std::to_string(o.overlap));
  if (!(o.min_tissue >= 0 && o.min_tissue <= 1)) bad("--min-tissue must be in [0, 1], got " + fmt(o.min_tissue));
  if (o.mpp < 0 || !std::isfinite(o.mpp)) bad("--mpp must be positive, got " + fmt(o.mpp));
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    bad("--shard I/N needs 0 <= I < N, got " + std::to_string(o.shard_index) + "/" + std::to_string(o.shard_count));
  if (o.threads < 1 || o.threads > 256) bad("--threads must be 1..256, got " + std::to_string(o.threads));
  check_tissue_options(o.tissue);
}

std::vector<std::string> list_slides(const std::vector<std::string>& inputs) {
  std::vector<std::string> found;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      for (const auto& e : fs::directory_iterator(in, ec))
        if (e.is_regular_file() && is_slide_file(e.path().string())) found.push_back(e.path().string());
    } else if (fs::exists(in, ec)) {
      found.push_back(in);  // named explicitly: tried whatever its extension, failing clearly if not a slide
    } else {
      throw std::runtime_error(in + ": no such slide file or folder");
    }
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  if (found.empty()) throw std::runtime_error("no slides found in " + inputs.front() + (inputs.size() > 1 ? " ..." : ""));
  std::map<std::string, std::string> by_name;
  for (const auto& p : found) {
    auto [it, fresh] = by_name.emplace(slide_name(p), p);
    if (!fresh) throw std::runtime_error("two slides share the name '" + it->first + "': " + it->second + " and " + p + " (their outputs would collide)");
  }
  return found;
}

std::vector<std::string> shard_of(const std::vector<std::string>& slides, int index, int count) {
  std::vector<std::string> mine;
  for (size_t k = 0; k < slides.size(); ++k)
    if (int(k % size_t(count)) == index) mine.push_back(slides[k]);
  return mine;
}

std::map<std::string, double> read_mpp_csv(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot read the --mpp-csv file");
  std::stringstream ss;
  ss << f.rdbuf();
  const auto rows = data::parse_csv(ss.str(), path);
  if (rows.empty()) throw std::runtime_error(path + ": empty --mpp-csv file (expected a header slide,mpp)");
  int cs = -1, cm = -1;
  for (int i = 0; i < (int)rows[0].fields.size(); ++i) {
    const std::string h = trim(rows[0].fields[i]);
    if (h == "slide" || h == "slide_id") cs = i;
    if (h == "mpp") cm = i;
  }
  if (cs < 0 || cm < 0) throw std::runtime_error(path + ": the header needs columns slide (or slide_id) and mpp");
  std::map<std::string, double> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& f2 = rows[r].fields;
    if (f2.size() == 1 && trim(f2[0]).empty()) continue;
    const std::string where = path + " line " + std::to_string(rows[r].line);
    if ((int)f2.size() <= std::max(cs, cm)) throw std::runtime_error(where + ": too few columns");
    char* end = nullptr;
    const std::string v = trim(f2[cm]);
    const double mpp = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(mpp > 0) || !std::isfinite(mpp))
      throw std::runtime_error(where + ": mpp '" + v + "' is not a positive number");
    out[slide_name(trim(f2[cs]))] = mpp;
  }
  return out;
}

SlideRecord patch_one_slide(const std::string& path, const PatchOptions& o, const std::map<std::string, double>& mpp_table) {
  const auto t0 = std::chrono::steady_clock::now();
  SlideRecord rec;
  rec.slide = slide_name(path);
  rec.path = path;
  const OutputPaths out = output_paths(o, rec.slide);
  try {
    Slide slide(path);
    // 1. Magnification: --mpp-csv, --mpp, then the slide's metadata; never a guess.
    if (auto it = mpp_table.find(rec.slide); it != mpp_table.end()) {
      rec.mpp = it->second, rec.mpp_source = "--mpp-csv";
    } else if (o.mpp > 0) {
      rec.mpp = o.mpp, rec.mpp_source = "--mpp";
    } else {
      const MppInfo m = slide.metadata_mpp();
      if (m.mpp <= 0)
        throw std::runtime_error(path + ": no microns-per-pixel or objective power in its metadata; give it with --mpp X or --mpp-csv FILE");
      rec.mpp = m.mpp, rec.mpp_source = m.source;
    }
    const PatchGeometry g = patch_geometry(path, rec.mpp, rec.mpp_source, o.mag, o.patch_size, o.overlap);
    // 2-3. Thumbnail and tissue.
    auto lap = [t = std::chrono::steady_clock::now()]() mutable {
      const auto now = std::chrono::steady_clock::now();
      const double s = std::chrono::duration<double>(now - t).count();
      t = now;
      return s;
    };
    const Thumbnail th = read_thumbnail(slide, g.level0_mag);
    rec.seconds_read = lap();
    const TissueResult tissue = segment_tissue(th.image, th.dx, th.dy, rec.mpp, o.tissue);
    rec.seconds_segment = lap();
    rec.tissue_area_mm2 = tissue.tissue_area_mm2;
    if (tissue.regions.empty())
      throw std::runtime_error(path + ": no tissue found" +
                               (tissue.threshold < 0 ? std::string(" (a uniform thumbnail: Otsu has no threshold)")
                                                     : " (threshold " + std::to_string(tissue.threshold) + ")"));
    // 4. The grid.
    const TissueFraction fraction(tissue.mask, th.dx, th.dy);
    std::vector<Coord> coords;
    const int64_t P0 = g.patch_size_level0, s = g.step();
    for (int64_t y = 0; y + P0 <= slide.height(); y += s)
      for (int64_t x = 0; x + P0 <= slide.width(); x += s)
        if (fraction(x, y, P0) >= o.min_tissue) coords.push_back({x, y});
    if (coords.empty()) throw std::runtime_error(path + ": tissue found but no patch has a tissue fraction >= --min-tissue " + fmt(o.min_tissue));
    rec.patches = int64_t(coords.size());
    rec.seconds_tile = lap();
    // Outputs: pictures and contours first, the coordinates (what marks the slide done) last.
    for (const fs::path& p : {out.thumbnail, out.contours, out.geojson, out.coords, out.record}) {
      fs::create_directories(p.parent_path());
      remove_leftovers(p.parent_path(), p.filename().string());
    }
    data::write_file_atomic(out.thumbnail.string(), encode_jpeg(th.image, 90));
    data::write_file_atomic(out.contours.string(),
                            encode_jpeg(draw_contours(th.image, tissue.regions, coords, P0, th.dx, th.dy), 90));
    data::write_file_atomic(out.geojson.string(), contours_geojson(tissue.regions, th.dx, th.dy));
    write_coords_h5(out.coords.string(), rec.slide, coords, g);
    rec.seconds_write = lap();
    rec.status = "ok";
  } catch (const std::exception& e) {
    rec.status = "failed";
    rec.reason = e.what();
    // No partial output: a failed slide keeps nothing (not even an earlier run's coordinates,
    // which would now disagree with its record).
    std::error_code ec;
    for (const fs::path& p : {out.thumbnail, out.contours, out.geojson, out.coords}) fs::remove(p, ec);
  }
  rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  try {
    fs::create_directories(out.record.parent_path());
    data::write_file_atomic(out.record.string(), to_json(rec).dump(1) + "\n");
  } catch (const std::exception& e) {
    if (rec.status == "ok") {
      rec.status = "failed";
      rec.reason = e.what();
    }
  }
  return rec;
}

std::vector<SlideRecord> run_patching(const PatchOptions& o, const std::function<void(const std::string&)>& progress) {
  check_patch_options(o);
  const auto mpp_table = o.mpp_csv.empty() ? std::map<std::string, double>() : read_mpp_csv(o.mpp_csv);
  const std::vector<std::string> slides = shard_of(list_slides(o.inputs), o.shard_index, o.shard_count);
  fs::create_directories(o.out);
  std::vector<SlideRecord> records(slides.size());
  std::atomic<size_t> next{0};
  std::atomic<int> finished{0};
  std::mutex print_mutex;
  auto worker = [&] {
    for (size_t k; (k = next++) < slides.size();) {
      SlideRecord r;
      const OutputPaths p = output_paths(o, slide_name(slides[k]));
      if (read_done_record(p, r)) {
        r.skipped = true;
      } else {
        r = patch_one_slide(slides[k], o, mpp_table);
      }
      records[k] = r;
      if (progress) {
        std::lock_guard<std::mutex> lock(print_mutex);
        const int n = ++finished;
        std::string line = "[" + std::to_string(n) + "/" + std::to_string(slides.size()) + "] " + r.slide + ": ";
        if (r.skipped) line += "done before (" + std::to_string(r.patches) + " patches), skipped";
        else if (r.status == "ok")
          line += std::to_string(r.patches) + " patches, tissue " + fmt(r.tissue_area_mm2, 4) + " mm^2, mpp " + fmt(r.mpp, 4) +
                  " (" + r.mpp_source + "), " + fmt(r.seconds, 3) + " s";
        else line += "FAILED: " + r.reason;
        progress(line);
      }
    }
  };
  const int nthreads = std::max(1, std::min<int>(o.threads, int(slides.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < nthreads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  write_summary(o);
  return records;
}

}  // namespace lm::slides
