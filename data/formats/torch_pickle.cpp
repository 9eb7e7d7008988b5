// The restricted pickle interpreter (see torch_pickle.h).
#include "data/formats/torch_pickle.h"

#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "data/formats/zip_reader.h"

namespace lm::data {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("file " + path + ": " + what);
}

struct PVal {
  enum class K { None, Bool, Int, Str, Tuple, Global, Storage, EmptyDict, Tensor, Mark } k = K::None;
  int64_t i = 0;
  std::string s, s2;  // Str: s; Global: module s, name s2; Storage: key s
  std::vector<PVal> items;  // Tuple
  DType dtype = DType::F32;  // Storage, Tensor (the storage's dtype)
  // Tensor
  std::string key;
  int64_t storage_numel = 0, offset = 0;
  std::vector<int64_t> sizes, strides;
  int64_t weight = 1;  // values nested in this one, itself included (bounds memo/tuple blow-up)
};

const char* kind_name(const PVal& v) {
  switch (v.k) {
    case PVal::K::None: return "NoneType";
    case PVal::K::Bool: return "bool";
    case PVal::K::Int: return "int";
    case PVal::K::Str: return "str";
    case PVal::K::Tuple: return "tuple";
    case PVal::K::Global: return "class/function";
    case PVal::K::Storage: return "torch storage";
    case PVal::K::EmptyDict: return "dict";
    case PVal::K::Tensor: return "torch.Tensor";
    case PVal::K::Mark: return "mark";
  }
  return "?";
}

std::optional<DType> storage_dtype(const std::string& module, const std::string& name) {
  if (module != "torch") return std::nullopt;
  if (name == "FloatStorage") return DType::F32;
  if (name == "HalfStorage") return DType::F16;
  if (name == "DoubleStorage") return DType::F64;
  if (name == "BFloat16Storage") return DType::BF16;
  return std::nullopt;
}


class Unpickler {
 public:
  Unpickler(const std::string& path, const std::string& data) : path_(path), d_(data) {}

  PtTensor run() {
    while (true) {
      if (p_ >= d_.size()) bad("pickle ends without STOP");
      const size_t at = p_;
      const unsigned char op = (unsigned char)d_[p_++];
      switch (op) {
        case 0x80: take(1); break;                      // PROTO
        case 0x95: take(8); break;                      // FRAME (protocol 4)
        case '(': push(mk(PVal::K::Mark)); break;       // MARK
        case 'N': push(mk(PVal::K::None)); break;       // NONE
        case 0x88: push(boolean(true)); break;          // NEWTRUE
        case 0x89: push(boolean(false)); break;         // NEWFALSE
        case 'K': push(integer(u8())); break;           // BININT1
        case 'M': push(integer(rd16(take(2)))); break;  // BININT2
        case 'J': push(integer((int32_t)rd32(take(4)))); break;  // BININT
        case 0x8a: {                                    // LONG1
          size_t n = u8();
          if (n > 8) bad("integer too large");
          const unsigned char* b = take(n);
          uint64_t v = 0;
          for (size_t k = 0; k < n; ++k) v |= (uint64_t)b[k] << (8 * k);
          if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~0ull << (8 * n);  // sign-extend
          push(integer((int64_t)v));
          break;
        }
        case 'X': {  // BINUNICODE
          uint32_t n = rd32(take(4));
          push(str(take_str(n)));
          break;
        }
        case 0x8c: push(str(take_str(u8()))); break;  // SHORT_BINUNICODE (protocol 4)
        case 'c': {                                   // GLOBAL
          std::string module = line(), name = line();
          check_global(module, name);
          PVal g = mk(PVal::K::Global);
          g.s = module;
          g.s2 = name;
          push(g);
          break;
        }
        case ')': push(mk(PVal::K::Tuple)); break;  // EMPTY_TUPLE
        case 0x85: case 0x86: case 0x87: {          // TUPLE1..3
          size_t n = op - 0x84;
          if (stack_.size() < n) bad("stack underflow");
          PVal t = mk(PVal::K::Tuple);
          t.items.assign(stack_.end() - n, stack_.end());
          stack_.resize(stack_.size() - n);
          for (auto& v : t.items) if (v.k == PVal::K::Mark) bad("misplaced MARK");
          weigh(t);
          push(t);
          break;
        }
        case 't': {  // TUPLE
          PVal t = mk(PVal::K::Tuple);
          t.items = pop_to_mark();
          weigh(t);
          push(t);
          break;
        }
        case '}': push(mk(PVal::K::EmptyDict)); break;  // EMPTY_DICT
        case 'q': memo_put(u8()); break;                // BINPUT
        case 'r': memo_put(rd32(take(4))); break;       // LONG_BINPUT
        case 0x94: memo_put((uint32_t)memo_.size()); break;  // MEMOIZE (protocol 4)
        case 'h': memo_get(u8()); break;                // BINGET
        case 'j': memo_get(rd32(take(4))); break;       // LONG_BINGET
        case 'Q': persistent_load(); break;             // BINPERSID
        case 'R': reduce(); break;                      // REDUCE
        case 'b': {                                     // BUILD: only a no-op state is accepted
          PVal state = pop();
          if (stack_.empty()) bad("stack underflow");
          if (state.k != PVal::K::None && state.k != PVal::K::EmptyDict)
            refuse("object with pickled state (" + std::string(kind_name(stack_.back())) + " + BUILD)");
          break;
        }
        case '.': {  // STOP
          PVal r = pop();
          if (r.k != PVal::K::Tensor) refuse(kind_name(r));
          PtTensor t;
          t.dtype = r.dtype;
          t.key = r.key;
          t.storage_numel = r.storage_numel;
          t.offset = r.offset;
          t.sizes = r.sizes;
          t.strides = r.strides;
          return t;
        }
        // Opcodes that build containers or objects: name what was found and refuse.
        case ']': case 'l': case 'a': case 'e': refuse("list");
        case 's': case 'u': case 'd': refuse("dict");
        case 0x8f: case 0x90: case 0x91: refuse("set");
        case 0x81: case 0x92: case 'i': case 'o': refuse("object (NEWOBJ/INST/OBJ)");
        case 0x93: refuse("object (STACK_GLOBAL)");
        case 'B': case 'C': case 0x8e: case 0x96: case 0x97: case 0x98: refuse("bytes");
        case 'G': refuse("float");
        default: {
          char buf[96];
          std::snprintf(buf, sizeof buf, "unsupported pickle opcode 0x%02x at byte %zu", op, at);
          fail(path_, std::string(buf) + "; only a plain tensor saved with torch.save is accepted");
        }
      }
    }
  }

 private:
  [[noreturn]] void bad(const std::string& what) { fail(path_, "corrupt .pt pickle: " + what); }
  [[noreturn]] void refuse(const std::string& type) {
    fail(path_, ".pt contains an object of type " + type + "; only a plain tensor is accepted");
  }

  static PVal mk(PVal::K k) {
    PVal v;
    v.k = k;
    return v;
  }
  static PVal boolean(bool b) {
    PVal v = mk(PVal::K::Bool);
    v.i = b;
    return v;
  }
  static PVal integer(int64_t i) {
    PVal v = mk(PVal::K::Int);
    v.i = i;
    return v;
  }
  static PVal str(std::string s) {
    PVal v = mk(PVal::K::Str);
    v.s = std::move(s);
    return v;
  }

  const unsigned char* take(size_t n) {
    if (n > d_.size() - p_) bad("truncated pickle");
    const unsigned char* r = reinterpret_cast<const unsigned char*>(d_.data() + p_);
    p_ += n;
    return r;
  }
  unsigned char u8() { return *take(1); }
  std::string take_str(size_t n) { return std::string(reinterpret_cast<const char*>(take(n)), n); }
  std::string line() {
    size_t e = d_.find('\n', p_);
    if (e == std::string::npos || e - p_ > 256) bad("bad GLOBAL operand");
    std::string s = d_.substr(p_, e - p_);
    p_ = e + 1;
    return s;
  }

  // A torch.save pickle of one tensor nests a few dozen values; copies through the memo
  // (BINGET of a tuple of memoized tuples, ...) could otherwise grow exponentially.
  void weigh(PVal& t) {
    t.weight = 1;
    for (const auto& v : t.items) t.weight += v.weight;
    if (t.weight > 4096) bad("tuples nested too deeply / too large");
  }

  void push(PVal v) {
    if (stack_.size() > 4096) bad("stack too deep");
    stack_.push_back(std::move(v));
  }
  PVal pop() {
    if (stack_.empty()) bad("stack underflow");
    PVal v = std::move(stack_.back());
    stack_.pop_back();
    if (v.k == PVal::K::Mark) bad("misplaced MARK");
    return v;
  }
  std::vector<PVal> pop_to_mark() {
    size_t m = stack_.size();
    while (m > 0 && stack_[m - 1].k != PVal::K::Mark) --m;
    if (m == 0) bad("TUPLE without MARK");
    std::vector<PVal> items(stack_.begin() + m, stack_.end());
    stack_.resize(m - 1);
    return items;
  }
  void memo_put(uint32_t idx) {
    if (stack_.empty()) bad("memo put on an empty stack");
    if (memo_.size() > 100000) bad("memo too large");
    memo_[idx] = stack_.back();
  }
  void memo_get(uint32_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("memo key " + std::to_string(idx) + " missing");
    push(it->second);
  }

  void check_global(const std::string& module, const std::string& name) {
    if (module == "torch._utils" && name == "_rebuild_tensor_v2") return;
    if (module == "collections" && name == "OrderedDict") return;
    if (storage_dtype(module, name)) return;
    if (module == "torch" && name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0)
      fail(path_, ".pt holds a tensor of storage type torch." + name +
                      "; features must be floating point (float32, float16, float64 or bfloat16)");
    if (module == "torch._utils" && name == "_rebuild_parameter") refuse("torch.nn.Parameter");
    if (module == "torch._tensor" && name == "_rebuild_from_type_v2") refuse("tensor subclass (torch._tensor._rebuild_from_type_v2)");
    refuse(module + "." + name);
  }

  void persistent_load() {
    PVal pid = pop();
    if (pid.k != PVal::K::Tuple || pid.items.size() != 5 || pid.items[0].k != PVal::K::Str ||
        pid.items[0].s != "storage")
      refuse("persistent object other than a storage");
    const PVal& type = pid.items[1];
    const PVal& key = pid.items[2];
    const PVal& numel = pid.items[4];
    if (type.k != PVal::K::Global || !storage_dtype(type.s, type.s2) || key.k != PVal::K::Str ||
        numel.k != PVal::K::Int || numel.i < 0)
      bad("malformed storage reference");
    PVal st = mk(PVal::K::Storage);
    st.dtype = *storage_dtype(type.s, type.s2);
    st.key = key.s;
    st.storage_numel = numel.i;
    push(st);
  }

  static std::vector<int64_t> int_tuple(const PVal& v, bool& ok) {
    std::vector<int64_t> r;
    if (v.k != PVal::K::Tuple) { ok = false; return r; }
    for (auto& e : v.items) {
      if (e.k != PVal::K::Int) { ok = false; return r; }
      r.push_back(e.i);
    }
    return r;
  }

  void reduce() {
    PVal args = pop();
    PVal fn = pop();
    if (fn.k != PVal::K::Global || args.k != PVal::K::Tuple) bad("REDUCE on a non-callable");
    if (fn.s == "collections" && fn.s2 == "OrderedDict") {
      if (!args.items.empty()) refuse("collections.OrderedDict with items");
      push(mk(PVal::K::EmptyDict));
      return;
    }
    if (fn.s == "torch._utils" && fn.s2 == "_rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const auto& a = args.items;
      if (a.size() < 6 || a.size() > 7) bad("_rebuild_tensor_v2 with " + std::to_string(a.size()) + " arguments");
      bool ok = true;
      PVal t = mk(PVal::K::Tensor);
      if (a[0].k != PVal::K::Storage || a[1].k != PVal::K::Int) ok = false;
      t.sizes = int_tuple(a[2], ok);
      t.strides = int_tuple(a[3], ok);
      if (!ok || t.sizes.size() != t.strides.size()) bad("malformed _rebuild_tensor_v2 arguments");
      if (a[5].k != PVal::K::EmptyDict && a[5].k != PVal::K::None) refuse("tensor with backward hooks");
      if (a.size() == 7 && a[6].k != PVal::K::EmptyDict && a[6].k != PVal::K::None) refuse("tensor with metadata");
      t.dtype = a[0].dtype;
      t.key = a[0].key;
      t.storage_numel = a[0].storage_numel;
      t.offset = a[1].i;
      push(t);
      return;
    }
    refuse(fn.s + "." + fn.s2 + " (called)");
  }

  std::string path_;
  const std::string& d_;
  size_t p_ = 0;
  std::vector<PVal> stack_;
  std::unordered_map<uint32_t, PVal> memo_;
};


}  // namespace

PtTensor unpickle_tensor(const std::string& path, const std::string& pickle) { return Unpickler(path, pickle).run(); }

}  // namespace lm::data
