// `libramil report`: the HTML page built from hand-made run directories (results with
// mean +- std, ROC, confusion matrix, learning curves, comparison and few-shot curves, the
// simulated-data banner, notes instead of crashes when inputs are missing), well-formed
// inline SVG, the plotting helpers, and end to end after `libramil train` (heatmaps,
// transport plan with entity names, top patches; the CLI's refusal to overwrite).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "models/report/report.h"
#include "models/report/run_dir.h"
#include "models/report/svg_plot.h"
#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << text;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// Checks that every <svg>...</svg> block is well-formed XML as far as tags go: every start tag
// is closed in order, attributes are quoted, no stray '<' or '&' in text.
std::string check_svg_blocks(const std::string& html, size_t& blocks) {
  blocks = 0;
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) {
    size_t end = html.find("</svg>", at);
    if (end == std::string::npos) return "unterminated <svg> at " + std::to_string(at);
    std::string b = html.substr(at, end + 6 - at);
    ++blocks;
    std::vector<std::string> stack;
    size_t i = 0;
    while (i < b.size()) {
      if (b[i] == '&') {
        size_t semi = b.find(';', i);
        if (semi == std::string::npos || semi - i > 8) return "bare & in svg: " + b.substr(i, 20);
        i = semi + 1;
        continue;
      }
      if (b[i] != '<') {
        ++i;
        continue;
      }
      size_t close = i + 1;
      char quote = 0;
      for (; close < b.size(); ++close) {
        char c = b[close];
        if (quote) {
          if (c == quote) quote = 0;
          else if (c == '<') return "'<' inside an attribute: " + b.substr(i, 60);
        } else if (c == '"' || c == '\'') {
          quote = c;
        } else if (c == '>') {
          break;
        } else if (c == '<') {
          return "'<' inside a tag: " + b.substr(i, 60);
        }
      }
      if (close >= b.size()) return "unterminated tag: " + b.substr(i, 60);
      std::string tag = b.substr(i + 1, close - i - 1);
      if (tag.empty()) return "empty tag";
      if (tag[0] == '/') {
        std::string name = tag.substr(1);
        if (stack.empty() || stack.back() != name) return "mismatched </" + name + ">";
        stack.pop_back();
      } else if (tag.back() != '/') {
        stack.push_back(tag.substr(0, tag.find_first_of(" \n\t")));
      }
      i = close + 1;
    }
    if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  }
  return "";
}

// A run directory as train writes it, by hand: 2 folds x 3 epochs, C classes.
void fake_run(const fs::path& dir, int C, const std::string& model, const std::string& inputs_json, bool with_summary = true) {
  write(dir / "config.json", "{\"model\": \"" + model + "\", \"num_classes\": " + std::to_string(C) +
                                 ", \"folds\": 2, \"epochs\": 3, \"lr\": 0.001, \"inputs\": " + inputs_json + "}\n");
  for (int fold = 0; fold < 2; ++fold)
    write(dir / "logs" / ("log_" + std::to_string(fold) + ".csv"),
          "epoch,train_loss,train_acc,val_loss,val_acc,val_auc,val_f1,test_loss,test_acc,test_auc,test_f1,seconds\n"
          "0,0.700000,0.500000,0.690000,0.500000,0.600000,0.400000,0.695000,0.500000,0.550000,0.450000,0.100\n"
          "1,0.600000,0.750000,0.650000,0.750000,0.700000,0.700000,0.660000,0.625000,0.650000,0.600000,0.100\n"
          "2,0.500000,1.000000,0.640000,0.750000,0.800000,0.700000,0.650000,0.750000,0.700000,0.700000,0.100\n");
  write(dir / "logs" / "final_log.csv",
        "fold,best_epoch,val_acc,val_auc,val_f1,test_acc,test_auc,test_f1\n"
        "0,2,0.750000,0.800000,0.700000,0.833333,0.750000,0.800000\n"
        "1,1,0.750000,0.700000,0.700000,0.666667,0.625000,0.600000\n");
  if (with_summary)
    write(dir / "logs" / "summary_log.csv",
          "metric,mean,std\nacc,0.750000,0.117851\nauc,0.687500,0.088388\nf1,0.700000,0.141421\n");
  std::string p = "fold,slide,label";
  for (int c = 0; c < C; ++c) p += ",prob_" + std::to_string(c);
  p += "\n";
  for (int fold = 0; fold < 2; ++fold)
    for (int i = 0; i < 6; ++i) {
      int y = i % C;
      p += std::to_string(fold) + ",slide_" + std::to_string(fold) + "_" + std::to_string(i) + "," + std::to_string(y);
      for (int c = 0; c < C; ++c) {
        double v = c == y ? 0.6 - 0.05 * i : 0.4 / (C - 1) + 0.05 * i / (C - 1);
        p += "," + std::to_string(v);
      }
      p += "\n";
    }
  write(dir / "logs" / "test_predictions.csv", p);
}

std::string svg_problem(const std::string& html, size_t& blocks) { return check_svg_blocks(html, blocks); }

int run_cli(const std::string& args, const fs::path& log) { return test::run_libramil(args, log); }

}  // namespace

TEST_CASE("report: SVG helpers") {
  CHECK(report::escape_xml("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;");
  std::vector<double> t = report::nice_ticks(0.03, 0.97, 5);
  REQUIRE(t.size() >= 3);
  CHECK(t.front() <= 0.03);
  CHECK(t.back() >= 0.97);
  CHECK(report::viridis(0) == "#440154");
  CHECK(report::viridis(1).size() == 7);
  // ROC of a perfect ranking and of a tie.
  report::RocPoints r = report::roc_points({0.9, 0.8, 0.2, 0.1}, {1, 1, 0, 0});
  REQUIRE(r.fpr.size() == 5);
  CHECK(r.tpr[2] == 1.0);
  CHECK(r.fpr[2] == 0.0);
  report::RocPoints tie = report::roc_points({0.5, 0.5}, {1, 0});
  CHECK(tie.fpr == std::vector<double>{0, 1});
  CHECK(report::roc_points({0.5, 0.4}, {1, 1}).fpr.empty());  // one class only: undefined
  size_t blocks = 0;
  std::string all = report::line_chart({{"a<b", {1, 2, 3}, {0.1, NAN, 0.3}, {}, "", true, false}}, {}) +
                    report::heatmap({1, 2, 3, 4, 5, 6}, 2, 3, {"r0", "r1"}, {"Clear & cell", "b", "a very long entity name indeed, longer"}, {}) +
                    report::confusion_matrix({{3, 1}, {0, 4}}, {"class 0", "class 1"}, "cm") +
                    report::patch_map({0, 512, 1024, 0}, {0, 0, 512, 512}, {0.1, 0.5, 0.9, NAN}, {}) +
                    report::patch_map({}, {}, {}, {});
  CHECK(svg_problem(all, blocks) == "");
  CHECK(blocks == 5);
  CHECK(all.find("a&lt;b") != std::string::npos);
  CHECK(all.find("Clear &amp; cell") != std::string::npos);
}

TEST_CASE("report: one run with a missing checkpoint and simulated features") {
  fs::path dir = test::scratch_dir("report_single");
  write(dir / "data" / "README.txt", "SIMULATED DATA - NOT REAL WHOLE-SLIDE IMAGES\n====\nsimulated\n");
  fs::create_directories(dir / "data" / "features");
  fake_run(dir / "run", 2, "libramil", "{\"features\": \"" + (dir / "data" / "features").string() + "\"}");
  report::ReportOptions o;
  o.run_dirs = {(dir / "run").string()};
  REQUIRE_NOTHROW(report::write_report(o));
  REQUIRE(fs::exists(dir / "run" / "report.html"));
  std::string html = test::read_text(dir / "run" / "report.html");
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("</html>") != std::string::npos);
  // Sections.
  for (const char* s : {"Results", "ROC curves and confusion matrix", "Learning curves", "fold 0: loss", "fold 1: accuracy",
                        "Confusion matrix (argmax)", "Heatmaps, transport plan and top patches"})
    CHECK_MESSAGE(html.find(s) != std::string::npos, s);
  // mean +- std from the summary, per-fold rows (best epoch counted from 1).
  CHECK(html.find("0.7500 &plusmn; 0.1179") != std::string::npos);
  CHECK(html.find("0.6875 &plusmn; 0.0884") != std::string::npos);
  CHECK(html.find("0.7000 &plusmn; 0.1414") != std::string::npos);
  CHECK(html.find("<td>0.8333</td>") != std::string::npos);
  // The simulated-data banner.
  CHECK(html.find("class=\"banner\"") != std::string::npos);
  CHECK(html.find("Simulated data.") != std::string::npos);
  // Missing checkpoint: a note, no heatmaps.
  CHECK(html.find("fold_0_best.safetensors</code> is missing") != std::string::npos);
  CHECK(html.find("Transport plan T") == std::string::npos);
  // Plots: ROC, confusion matrix, 2 folds x 2 learning curves; all well-formed.
  size_t blocks = 0;
  CHECK(svg_problem(html, blocks) == "");
  CHECK(blocks == 6);
  CHECK(count(html, "<svg") == count(html, "</svg>"));
  CHECK(html.find("pooled (AUC ") != std::string::npos);
  // No JavaScript, nothing fetched.
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("src=\"http") == std::string::npos);
}

TEST_CASE("report: missing files become notes; multiclass ROC is one-vs-rest") {
  fs::path dir = test::scratch_dir("report_partial");
  fake_run(dir / "run", 3, "abmil", "{}", /*with_summary=*/false);
  fs::remove(dir / "run" / "logs" / "log_1.csv");
  report::ReportOptions o;
  o.run_dirs = {(dir / "run").string()};
  std::string html;
  REQUIRE_NOTHROW(html = report::render_report(o));
  CHECK(html.find("recomputed from logs/final_log.csv") != std::string::npos);
  CHECK(html.find("0.7500 &plusmn; 0.1179") != std::string::npos);  // mean/std of 0.833333, 0.666667
  CHECK(html.find("class 2 vs rest") != std::string::npos);
  CHECK(html.find("exist for Libra-MIL runs only") != std::string::npos);
  CHECK(html.find("class=\"banner\"") == std::string::npos);  // not simulated
  size_t blocks = 0;
  CHECK(svg_problem(html, blocks) == "");
  CHECK(blocks == 4);  // ROC, confusion, 1 fold x 2 curves

  // A directory with nothing in it: notes only, no exception.
  fs::create_directories(dir / "empty");
  o.run_dirs = {(dir / "empty").string()};
  REQUIRE_NOTHROW(html = report::render_report(o));
  CHECK(html.find("config.json could not be read") != std::string::npos);
  CHECK(html.find("No test predictions") != std::string::npos);
  CHECK(count(html, "<svg") == count(html, "</svg>"));
}

TEST_CASE("report: several runs give a comparison table and few-shot curves") {
  fs::path dir = test::scratch_dir("report_compare");
  write(dir / "labels.csv", "name,label\na,0\nb,0\nc,0\nd,1\ne,1\nf,1\n");
  write(dir / "split1.json", R"({"train_0":["a","d"],"val_0":["b","e"],"test_0":["c","f"]})");
  write(dir / "split2.json", R"({"train_0":["a","b","d","e"],"val_0":["c"],"test_0":["f"]})");
  auto inputs = [&](const char* split) {
    return "{\"labels\": \"" + (dir / "labels.csv").string() + "\", \"split\": \"" + (dir / split).string() + "\"}";
  };
  fake_run(dir / "lm_1shot", 2, "libramil", inputs("split1.json"));
  fake_run(dir / "lm_2shot", 2, "libramil", inputs("split2.json"));
  // Runs whose splits were drawn with --shots K record K with the inputs.
  fake_run(dir / "ab_1shot", 2, "abmil", "{\"shots\": \"1\"}");
  fake_run(dir / "ab_2shot", 2, "abmil", "{\"shots\": \"2\"}");
  write(dir / "ab_2shot" / "logs" / "summary_log.csv", "metric,mean,std\nacc,0.600000,0.050000\nauc,0.650000,0.010000\nf1,0.550000,0.020000\n");
  report::ReportOptions o;
  o.run_dirs = {(dir / "lm_1shot").string(), (dir / "lm_2shot").string(), (dir / "ab_1shot").string(), (dir / "ab_2shot").string()};
  o.out_html = (dir / "compare.html").string();
  o.title = "Shots & models";
  REQUIRE_NOTHROW(report::write_report(o));
  std::string html = test::read_text(dir / "compare.html");
  CHECK(html.find("<h1>Shots &amp; models</h1>") != std::string::npos);
  CHECK(html.find("id=\"comparison\"") != std::string::npos);
  CHECK(html.find("Few-shot curves") != std::string::npos);
  CHECK(html.find("Test accuracy vs shots") != std::string::npos);
  CHECK(html.find("0.6000 &plusmn; 0.0500") != std::string::npos);
  for (const char* n : {"lm_1shot", "lm_2shot", "ab_1shot", "ab_2shot"}) CHECK(html.find(n) != std::string::npos);
  // Shots derived from fold 0 of each split.
  CHECK(html.find("1 shot (train slides per class in fold 0)") != std::string::npos);
  CHECK(html.find("2 shots (train slides per class in fold 0)") != std::string::npos);
  size_t blocks = 0;
  CHECK(svg_problem(html, blocks) == "");
  CHECK(blocks == 2 + 4 * 6);

  // Runs that differ only in the fusion or the learning rate are told apart in the legend and
  // the table (issue 23's study compares them; the curves keep one line per label).
  for (const char* extra : {"\"fusion\": \"standardised\"", "\"lr\": 0.0001", "\"lr\": 0.0005"}) {
    const std::string name = std::string(extra).find("fusion") != std::string::npos ? "std" : std::string(extra).find("0.0005") != std::string::npos ? "lr5" : "lr1";
    fake_run(dir / name, 2, "libramil", inputs("split1.json"));
    std::string cfg = test::read_text(dir / name / "config.json");
    cfg.replace(cfg.find("\"lr\": 0.001"), 11, std::string(extra).find("lr") != std::string::npos ? extra : "\"lr\": 0.0001, " + std::string(extra));
    write(dir / name / "config.json", cfg);
    const std::string want = name == "std" ? "libramil {standardised}" : name == "lr5" ? "libramil lr 0.0005" : "libramil";
    CHECK(report::load_run((dir / name).string(), 0).model_label == want);
  }

  // Same shots everywhere: a table but no curve.
  o.run_dirs = {(dir / "lm_1shot").string(), (dir / "ab_1shot").string()};
  html = report::render_report(o);
  CHECK(html.find("id=\"comparison\"") != std::string::npos);
  CHECK(html.find("No few-shot curve") != std::string::npos);
}

TEST_CASE("report end to end: train, then libramil report with heatmaps, plan and top patches") {
  fs::path dir = test::scratch_dir("report_e2e");
  test::run_python_tool("make_tiny_dataset.py", dir.string() + " --classes 2 --per-class 6 --dim 16 --folds 2");
  fs::path run_dir = dir / "run";
  std::string common = "--data_csv " + (dir / "labels.csv").string() + " --data_split_json " + (dir / "split.json").string() +
                       " --h5_file_dir " + (dir / "features").string() + " --instance_path " +
                       (dir / "instance_priors.json").string() + " --bag_path " + (dir / "bag_priors.csv").string() +
                       " --instance_embeddings " + (dir / "z_ins.safetensors").string() + " --bag_embeddings " +
                       (dir / "z_bag.safetensors").string() +
                       " --epochs 2 --folds 2 --heads 2 --num_vis_prototypes 3 --lr 1e-3 --warmup_steps 2 --quiet";
  REQUIRE(run_cli("train " + common + " --save_dir " + run_dir.string(), dir / "train.log") == 0);
  fs::remove(run_dir / "report.html");  // train may already write one
  fs::path out = dir / "report.html";
  REQUIRE(run_cli("report " + run_dir.string() + " --out " + out.string() + " --slides 2", dir / "report.log") == 0);
  std::string html = test::read_text(out);
  CHECK(html.find("Instance weights and class attention on the slide") != std::string::npos);
  CHECK(html.find("Transport plan T (3 visual x 5 text prototypes)") != std::string::npos);
  CHECK(html.find("Top patches per text prototype") != std::string::npos);
  // Entity names (the text before the colon of "Entity k: description k.") label the plan and the table.
  for (int k = 0; k < 5; ++k) CHECK(html.find(">Entity " + std::to_string(k) + "<") != std::string::npos);
  CHECK(count(html, "class=\"first\"") == 5);  // one top-5 block per entity
  CHECK(count(html, "instance weight</text>") == 2);  // two slides drawn
  size_t blocks = 0;
  CHECK(svg_problem(html, blocks) == "");
  CHECK(blocks == 2 + 4 + 2 * 2 + 1);  // ROC, confusion, learning curves, 2 slides x 2 maps, plan
  CHECK(html.find("class=\"banner\"") == std::string::npos);  // the tiny dataset is not `simulate` output
  // An existing output is not replaced without --overwrite.
  CHECK(run_cli("report " + run_dir.string() + " --out " + out.string(), dir / "again.log") != 0);
  CHECK(test::read_text(dir / "again.log").find("--overwrite") != std::string::npos);
  CHECK(run_cli("report " + run_dir.string() + " --out " + out.string() + " --overwrite --slides 0", dir / "over.log") == 0);
  CHECK(test::read_text(out).find("Skipped (no slides requested)") != std::string::npos);
  // The default output lies in the (first) run directory.
  REQUIRE(run_cli("report " + run_dir.string() + " " + run_dir.string(), dir / "two.log") == 0);
  CHECK(fs::exists(run_dir / "report.html"));
}
