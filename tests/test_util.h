// Helpers shared by the test suites: where the repository and build tree are, a scratch
// directory per test, and running the Python reference scripts in tools/ (PyTorch, POT,
// Hugging Face tokenizers) that produce fixtures at test time.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace lm::test {

inline std::filesystem::path source_dir() { return LIBRAMIL_SOURCE_DIR; }
inline std::filesystem::path binary_dir() { return LIBRAMIL_BINARY_DIR; }
// Test data shipped in the repository: tests/data (Musk1, Elephant, two real slides; sources
// and licences in tests/data/README.md).
inline std::filesystem::path test_data(const std::string& rel) { return source_dir() / "tests" / "data" / rel; }

// The project's shared folder (../shared beside our own checkouts and CI), or
// $LIBRAMIL_SHARED_DIR where it lives elsewhere (tools/gpu_deps.sh carries a copy to the GPU
// machine). No test needs it: it is only the last place looked for the CONCH tokenizer.
inline std::filesystem::path shared_dir() {
  if (const char* d = std::getenv("LIBRAMIL_SHARED_DIR"); d && *d) return d;
  return source_dir().parent_path() / "shared";
}

// The CONCH tokenizer file (CC BY-NC-ND, never committed): $LIBRAMIL_CONCH_TOKENIZER, else where
// tools/setup.sh puts it ($LIBRAMIL_HOME, default ~/.cache/libramil, /tokenizers/), else the
// shared folder's copy. Returns the first that exists, else the setup.sh location.
inline std::filesystem::path conch_tokenizer() {
  const std::string name = "conch_byte_level_bpe_uncased.json";
  if (const char* p = std::getenv("LIBRAMIL_CONCH_TOKENIZER"); p && *p) return p;
  std::filesystem::path home;
  if (const char* h = std::getenv("LIBRAMIL_HOME"); h && *h) home = h;
  else home = std::filesystem::path(std::getenv("HOME") ? std::getenv("HOME") : ".") / ".cache" / "libramil";
  const auto cached = home / "tokenizers" / name;
  if (std::filesystem::exists(cached)) return cached;
  const auto shared = shared_dir() / "data" / "conch" / name;
  if (std::filesystem::exists(shared)) return shared;
  return cached;
}

// True when CI=true (or any non-empty CI other than "false"/"0"): missing data is then a failure.
inline bool in_ci() {
  const char* c = std::getenv("CI");
  if (!c || !*c) return false;
  const std::string v = c;
  return v != "false" && v != "0";
}

// Something a test needs is missing (`why`): under CI this throws (the test fails: CI can never
// pass by skipping); elsewhere it prints why the test is skipped and returns false.
inline bool skip_unless_ci(const std::string& why) {
  if (in_ci()) throw std::runtime_error(why + "; CI is set, so this is a failure, not a skip");
  std::fprintf(stderr, "SKIPPED: %s\n", why.c_str());
  return false;
}

// Data a test needs: true when `path` exists, else skip_unless_ci.
inline bool data_present(const std::filesystem::path& path, const std::string& what) {
  if (std::filesystem::exists(path)) return true;
  return skip_unless_ci(what + " not found at " + path.string() + " (tools/setup.sh provides it)");
}

// The interpreter that has torch (Debian's python3-torch) and the PyPI references
// (tokenizers, safetensors, pot): the project venv made by .ci/run, else LIBRAMIL_PYTHON,
// else /usr/bin/python3.
inline std::string python() {
  if (const char* p = std::getenv("LIBRAMIL_PYTHON")) return p;
  auto venv = source_dir() / ".venv" / "bin" / "python";
  if (std::filesystem::exists(venv)) return venv.string();
  return "/usr/bin/python3";
}

// A fresh, empty scratch directory under the build tree, named after the caller.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto d = binary_dir() / "test_scratch" / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// Runs a shell command; throws with the command line if it exits non-zero.
inline void run_or_throw(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd);
}

// Runs tools/<script> with the reference interpreter and the given arguments.
inline void run_python_tool(const std::string& script, const std::string& args) {
  run_or_throw(python() + " " + (source_dir() / "tools" / script).string() + " " + args);
}

// A tiny dataset (tools/make_tiny_dataset.py with `args`) in a fresh scratch directory `name`.
inline std::filesystem::path make_tiny_dataset(const std::string& name, const std::string& args) {
  const auto dir = scratch_dir(name);
  run_python_tool("make_tiny_dataset.py", dir.string() + " " + args);
  return dir;
}

// `train`'s flags naming a tiny dataset's inputs: labels, split, features, priors, embeddings.
inline std::string tiny_dataset_inputs(const std::filesystem::path& d) {
  return "--data_csv " + (d / "labels.csv").string() + " --data_split_json " + (d / "split.json").string() +
         " --h5_file_dir " + (d / "features").string() + " --instance_path " + (d / "instance_priors.json").string() +
         " --bag_path " + (d / "bag_priors.csv").string() + " --instance_embeddings " + (d / "z_ins.safetensors").string() +
         " --bag_embeddings " + (d / "z_bag.safetensors").string();
}

// Runs the built `libramil` binary with `args` (and optional leading environment assignments),
// stdout and stderr to `log`. Returns its exit status, or 128 + N when killed by signal N.
inline int run_libramil(const std::string& args, const std::filesystem::path& log, const std::string& env = "") {
  std::string cmd = env + (env.empty() ? "" : " ") + (binary_dir() / "libramil").string() + " " + args + " > " + log.string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  if (WIFSIGNALED(rc)) return 128 + WTERMSIG(rc);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace lm::test
