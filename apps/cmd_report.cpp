// `libramil report RUN_DIR...`: one self-contained HTML page (models/report/report.h).
#include <filesystem>
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "models/report/report.h"

namespace lm::app {

namespace fs = std::filesystem;

Runner add_report(CLI::App& app) {
  struct Flags {
    std::vector<std::string> run_dirs;
    std::string out, title, slides_dir;
    int slides = 3;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("RUN_DIR", f->run_dirs, "run directories written by `train --save_dir` (several: a comparison)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--out", f->out, "output HTML file (default: RUN_DIR/report.html of the first run)");
  app.add_option("--slides", f->slides, "test slides of fold 0 drawn as heatmaps (Libra-MIL runs)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--slides-dir", f->slides_dir,
                 "folder of the whole-slide images: the explained slides' maps are drawn over the slides themselves "
                 "(with their top patches at full resolution) where an image is found")
      ->check(CLI::ExistingDirectory);
  app.add_option("--title", f->title, "page title (default: made from the run names)");
  app.add_flag("--overwrite", f->overwrite, "replace an existing output file");
  return [f] {
    report::ReportOptions o;
    o.run_dirs = f->run_dirs;
    o.out_html = f->out;
    o.heatmap_slides = f->slides;
    o.slides_dir = f->slides_dir;
    o.title = f->title;
    const std::string path = report::report_path(o);
    if (fs::exists(path) && !f->overwrite) throw std::runtime_error(path + " exists (pass --overwrite to replace it)");
    report::write_report(o);
    std::cout << "report written to " << path << "\n";
    return 0;
  };
}

}  // namespace lm::app
