#include "io/gguf.h"

#include <cstring>
#include <limits>

#include "base/half.h"
#include "testing/testing.h"

namespace lowbit::gguf {
namespace {

using ::lowbit::testing::read_bytes;
using ::lowbit::testing::TempDir;
using ::lowbit::testing::write_bytes;

// Builds GGUF bytes by hand, so tests can write files no well-behaved writer would produce.
class Bytes {
 public:
  template <typename T>
  Bytes& put(T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put<uint32_t>(version).put<uint64_t>(tensors).put<uint64_t>(kvs);
  }
  Bytes& kv_u32(const std::string& key, uint32_t v) { return str(key).put<uint32_t>(4).put<uint32_t>(v); }
  // dims in file (ggml, innermost-first) order.
  Bytes& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name).put<uint32_t>(uint32_t(dims.size()));
    for (uint64_t d : dims) put<uint64_t>(d);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  Bytes& pad(size_t alignment = 32) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  std::vector<uint8_t> b;
};

Result<GgufFile> parse_bytes(const TempDir& dir, const std::vector<uint8_t>& bytes) {
  const std::string path = dir.file("t.gguf");
  write_bytes(path, bytes);
  return GgufFile::open(path);
}

// Expects failure with `code` and a message naming the file and containing `needle`.
void expect_error(const TempDir& dir, const std::vector<uint8_t>& bytes, ErrorCode code, const std::string& needle) {
  auto f = parse_bytes(dir, bytes);
  ASSERT_FALSE(f.ok()) << "expected an error mentioning: " << needle;
  EXPECT_EQ(f.status().code(), code) << f.status().message();
  EXPECT_NE(f.status().message().find(dir.file("t.gguf")), std::string::npos) << f.status().message();
  EXPECT_NE(f.status().message().find(needle), std::string::npos) << f.status().message();
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// A writer holding every metadata type and several tensor types.
GgufWriter sample_writer(std::vector<std::vector<uint8_t>>* keep) {
  GgufWriter w;
  Metadata& m = w.metadata();
  m.set("general.architecture", Value::string("llama"));
  m.set("a.u8", Value::u8(200));
  m.set("a.i8", Value::scalar(ValueType::kI8, int64_t{-100}));
  m.set("a.u16", Value::scalar(ValueType::kU16, uint64_t{65535}));
  m.set("a.i16", Value::scalar(ValueType::kI16, int64_t{-32768}));
  m.set("a.u32", Value::u32(4000000000u));
  m.set("a.i32", Value::i32(-7));
  m.set("a.f32", Value::f32(0.1f));
  m.set("a.bool", Value::boolean(true));
  m.set("a.u64", Value::u64(std::numeric_limits<uint64_t>::max()));
  m.set("a.i64", Value::i64(std::numeric_limits<int64_t>::min()));
  m.set("a.f64", Value::f64(0.1));
  m.set("a.strings", Value::strings({"", "▁hello", std::string("nul\0byte", 8)}));
  m.set("a.f32s", Value::f32s({1.5f, -2.25f}));
  m.set("a.i32s", Value::i32s({1, -2, 3}));
  m.set("a.u8s", Value::array(ValueType::kU8, std::vector<uint64_t>{0, 255}));
  m.set("a.bools", Value::array(ValueType::kBool, std::vector<bool>{true, false, true}));
  m.set("a.empty", Value::array(ValueType::kU32, std::vector<uint64_t>{}));

  keep->push_back(f32_bytes({1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(w.add_tensor("w.f32", GgmlType::kF32, {2, 3}, keep->back()).ok());
  std::vector<uint8_t> f16(5 * 2);
  for (int i = 0; i < 5; ++i) {
    const uint16_t h = f32_to_fp16(float(i) * 0.5f);
    std::memcpy(f16.data() + 2 * i, &h, 2);
  }
  EXPECT_TRUE(w.add_tensor_owned("w.f16", GgmlType::kF16, {5}, f16).ok());
  EXPECT_TRUE(w.add_tensor_owned("w.bf16", GgmlType::kBF16, {1, 1, 1, 3}, std::vector<uint8_t>(6, 0x3f)).ok());
  std::vector<uint8_t> q8(2 * 34);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = uint8_t(i);
  EXPECT_TRUE(w.add_tensor_owned("w.q8_0", GgmlType::kQ8_0, {2, 32}, q8).ok());
  return w;
}

TEST(GgufTest, RoundTripMetadataAndTensors) {
  TempDir dir;
  std::vector<std::vector<uint8_t>> keep;
  GgufWriter w = sample_writer(&keep);
  const std::string path = dir.file("a.gguf");
  ASSERT_TRUE(w.write(path).ok());

  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), kDefaultAlignment);
  EXPECT_EQ(f->data_offset() % kDefaultAlignment, 0u);
  EXPECT_EQ(read_bytes(path).size() % kDefaultAlignment, 0u);

  const Metadata& m = f->metadata();
  ASSERT_EQ(m.entries().size(), w.metadata().entries().size());
  for (size_t i = 0; i < m.entries().size(); ++i) {
    EXPECT_EQ(m.entries()[i].first, w.metadata().entries()[i].first);  // file order kept
    EXPECT_EQ(m.entries()[i].second.type(), w.metadata().entries()[i].second.type());
    EXPECT_EQ(m.entries()[i].second.storage(), w.metadata().entries()[i].second.storage())
        << m.entries()[i].first;
  }
  EXPECT_EQ(*m.get_string("general.architecture"), "llama");
  EXPECT_EQ(*m.get_uint("a.u8"), 200u);
  EXPECT_EQ(*m.get_int("a.i8"), -100);
  EXPECT_EQ(*m.get_u32("a.u32"), 4000000000u);
  EXPECT_EQ(*m.get_int("a.i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*m.get_uint("a.u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(float(*m.get_float("a.f32")), 0.1f);
  EXPECT_EQ(*m.get_float("a.f64"), 0.1);
  EXPECT_TRUE(*m.get_bool("a.bool"));
  EXPECT_EQ(m.get_strings("a.strings")->at(2), std::string("nul\0byte", 8));
  EXPECT_EQ(*m.get_floats("a.f32s"), (std::vector<double>{1.5, -2.25}));
  EXPECT_EQ(*m.get_ints("a.i32s"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*m.get_ints("a.u8s"), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(m.find("a.empty")->size(), 0u);

  ASSERT_EQ(f->tensor_infos().size(), 4u);
  const TensorInfo* t = f->find_tensor("w.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  auto raw = f->raw_tensor(*t);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->dtype, DType::kF32);
  EXPECT_TRUE(std::equal(raw->data.begin(), raw->data.end(), keep[0].begin(), keep[0].end()));
  EXPECT_EQ(f->find_tensor("w.bf16")->shape, (std::vector<int64_t>{1, 1, 1, 3}));
  for (const TensorInfo& info : f->tensor_infos()) EXPECT_EQ(info.offset % kDefaultAlignment, 0u) << info.name;

  // Quantized tensors are readable as bytes but not as a plain RawTensor.
  const TensorInfo* q = f->find_tensor("w.q8_0");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->size_bytes, 68u);
  EXPECT_EQ(f->tensor_bytes(*q)[67], 67);
  auto rq = f->raw_tensor(*q);
  ASSERT_FALSE(rq.ok());
  EXPECT_EQ(rq.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(rq.status().message().find("w.q8_0"), std::string::npos);
  EXPECT_NE(rq.status().message().find("8"), std::string::npos);
  EXPECT_EQ(f->raw_tensors().status().code(), ErrorCode::kUnsupported);

  // Reading and writing again is byte-identical.
  GgufWriter w2;
  for (const auto& [k, v] : m.entries()) w2.metadata().set(k, v);
  for (const TensorInfo& info : f->tensor_infos())
    ASSERT_TRUE(w2.add_tensor(info.name, GgmlType(info.ggml_type), info.shape, f->tensor_bytes(info)).ok());
  ASSERT_TRUE(w2.write(dir.file("b.gguf")).ok());
  EXPECT_EQ(read_bytes(path), read_bytes(dir.file("b.gguf")));
}

TEST(GgufTest, CustomAlignmentIsHonoured) {
  TempDir dir;
  GgufWriter w;
  w.metadata().set(kAlignmentKey, Value::u32(256));
  const auto a = f32_bytes({1, 2, 3}), b = f32_bytes({4});
  ASSERT_TRUE(w.add_tensor("a", GgmlType::kF32, {3}, a).ok());
  ASSERT_TRUE(w.add_tensor("b", GgmlType::kF32, {1}, b).ok());
  ASSERT_TRUE(w.write(dir.file("a.gguf")).ok());
  auto f = GgufFile::open(dir.file("a.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->alignment(), 256u);
  EXPECT_EQ(f->data_offset() % 256, 0u);
  EXPECT_EQ(f->find_tensor("b")->offset, 256u);
  auto set = f->raw_tensors();
  ASSERT_TRUE(set.ok());
  float v;
  std::memcpy(&v, set->find("b")->data.data(), 4);
  EXPECT_EQ(v, 4.0f);
}

TEST(GgufTest, ShapesAreReversedFromFileOrder) {
  TempDir dir;
  Bytes g;
  g.header(1, 0).tensor("m", {3, 2}, 0, 0).pad().zeros(24);
  auto f = parse_bytes(dir, g.b);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->tensor_infos()[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f->tensor_infos()[0].size_bytes, 24u);
}

TEST(GgufTest, EmptyFileWithoutTensorsParses) {
  TempDir dir;
  Bytes g;
  g.header(0, 1).kv_u32("k", 5);  // no padding, no data section
  auto f = parse_bytes(dir, g.b);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(*f->metadata().get_u32("k"), 5u);
}

TEST(GgufTest, RejectsBadHeaders) {
  TempDir dir;
  expect_error(dir, {'G', 'G', 'M', 'L', 3, 0, 0, 0}, ErrorCode::kFormat, "not a GGUF file");
  expect_error(dir, {'G', 'G'}, ErrorCode::kFormat, "not a GGUF file");
  expect_error(dir, Bytes().header(0, 0, 2).b, ErrorCode::kUnsupported, "version 2");
  expect_error(dir, Bytes().header(0, 0, 0x03000000).b, ErrorCode::kUnsupported, "big-endian");
  expect_error(dir, Bytes().header(0, 0, 77).b, ErrorCode::kFormat, "unknown GGUF version 77");
  expect_error(dir, {'G', 'G', 'U', 'F', 3, 0}, ErrorCode::kFormat, "truncated");
}

TEST(GgufTest, RejectsCountsLargerThanTheFile) {
  TempDir dir;
  expect_error(dir, Bytes().header(0, uint64_t(1) << 60).b, ErrorCode::kFormat, "metadata entries");
  expect_error(dir, Bytes().header(~uint64_t{0}, 0).b, ErrorCode::kFormat, "tensors");
  // One kv, declared string length far beyond the file.
  expect_error(dir, Bytes().header(0, 1).put<uint64_t>(~uint64_t{0}).zeros(20).b, ErrorCode::kFormat, "key 0");
  expect_error(dir, Bytes().header(0, 1).put<uint64_t>(100).zeros(20).b, ErrorCode::kFormat, "only");
  // Key longer than the key cap.
  Bytes long_key;
  long_key.header(0, 1).str(std::string(65 * 1024, 'k')).put<uint32_t>(0).put<uint8_t>(0);
  expect_error(dir, long_key.b, ErrorCode::kFormat, "limit");
  // String value whose length exceeds what remains.
  expect_error(dir, Bytes().header(0, 1).str("k").put<uint32_t>(8).put<uint64_t>(1000).zeros(10).b,
               ErrorCode::kFormat, "value of key \"k\"");
  // Array count whose byte size overflows uint64 (2^62 u64 items), and one merely too large.
  expect_error(dir, Bytes().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(10).put<uint64_t>(uint64_t(1) << 62).b,
               ErrorCode::kFormat, "array \"k\"");
  expect_error(dir, Bytes().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(1000).zeros(100).b,
               ErrorCode::kFormat, "declares 1000 items");
}

TEST(GgufTest, RejectsBadValues) {
  TempDir dir;
  expect_error(dir, Bytes().header(0, 1).str("k").put<uint32_t>(13).put<uint32_t>(0).b, ErrorCode::kFormat,
               "unknown value type 13");
  expect_error(dir, Bytes().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(99).put<uint64_t>(0).b,
               ErrorCode::kFormat, "unknown element type 99");
  expect_error(dir, Bytes().header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(0).b,
               ErrorCode::kUnsupported, "nested arrays");
  expect_error(dir, Bytes().header(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2).b, ErrorCode::kFormat,
               "invalid bool");
  expect_error(dir, Bytes().header(0, 1).str("").put<uint32_t>(0).put<uint8_t>(0).b, ErrorCode::kFormat, "empty");
  expect_error(dir, Bytes().header(0, 2).kv_u32("k", 1).kv_u32("k", 2).b, ErrorCode::kFormat,
               "\"k\" appears twice");
}

TEST(GgufTest, RejectsBadAlignment) {
  TempDir dir;
  expect_error(dir, Bytes().header(0, 1).kv_u32(kAlignmentKey, 0).b, ErrorCode::kFormat, "power of two");
  expect_error(dir, Bytes().header(0, 1).kv_u32(kAlignmentKey, 48).b, ErrorCode::kFormat, "power of two");
  expect_error(dir, Bytes().header(0, 1).str(kAlignmentKey).put<uint32_t>(8).str("32").b, ErrorCode::kFormat,
               "expected u32");
}

TEST(GgufTest, RejectsBadTensorInfos) {
  TempDir dir;
  auto one = [](const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                size_t data_bytes) {
    Bytes g;
    g.header(1, 0).tensor(name, std::move(dims), type, offset).pad().zeros(data_bytes);
    return g.b;
  };
  expect_error(dir, one("t", {1, 1, 1, 1, 1}, 0, 0, 4), ErrorCode::kFormat, "5 dimensions");
  expect_error(dir, one("t", {uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0, 4), ErrorCode::kFormat, "overflows");
  expect_error(dir, one("t", {~uint64_t{0}}, 0, 0, 4), ErrorCode::kFormat, "overflows");
  expect_error(dir, one("t", {4}, 12, 0, 64), ErrorCode::kUnsupported, "tensor \"t\" has ggml type 12");
  expect_error(dir, one("t", {16}, 8, 0, 64), ErrorCode::kFormat, "not a multiple of 32");
  expect_error(dir, one("t", {4}, 0, 8, 64), ErrorCode::kFormat, "not a multiple of the alignment");
  expect_error(dir, one("t", {100}, 0, 0, 64), ErrorCode::kFormat, "outside the data section");
  expect_error(dir, one("t", {1}, 0, ~uint64_t{31}, 64), ErrorCode::kFormat, "outside the data section");
  expect_error(dir, one("", {1}, 0, 0, 64), ErrorCode::kFormat, "empty name");

  Bytes dup;
  dup.header(2, 0).tensor("t", {1}, 0, 0).tensor("t", {1}, 0, 32).pad().zeros(64);
  expect_error(dir, dup.b, ErrorCode::kFormat, "\"t\" appears twice");

  Bytes overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32).pad().zeros(64);
  expect_error(dir, overlap.b, ErrorCode::kFormat, "overlap");
}

// Every proper prefix of a valid file must fail cleanly with kFormat (never crash, never ok).
TEST(GgufTest, EveryTruncationIsAFormatError) {
  TempDir dir;
  std::vector<std::vector<uint8_t>> keep;
  ASSERT_TRUE(sample_writer(&keep).write(dir.file("a.gguf")).ok());
  const auto full = read_bytes(dir.file("a.gguf"));
  auto ok = parse_bytes(dir, full);
  ASSERT_TRUE(ok.ok());
  // The last tensor ends before the final padding; cutting only padding keeps the file valid.
  uint64_t data_end = 0;
  for (const TensorInfo& t : ok->tensor_infos()) data_end = std::max(data_end, ok->data_offset() + t.offset + t.size_bytes);
  for (size_t n = 0; n < data_end; ++n) {
    auto f = parse_bytes(dir, std::vector<uint8_t>(full.begin(), full.begin() + std::ptrdiff_t(n)));
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(f.status().code(), ErrorCode::kFormat) << n << ": " << f.status().message();
  }
}

// Corrupting any single header byte gives an error or a file that still validates; never a
// crash or a read outside the mapping (run under LOWBIT_SANITIZE to check the latter).
TEST(GgufTest, SingleByteCorruptionNeverCrashes) {
  TempDir dir;
  std::vector<std::vector<uint8_t>> keep;
  ASSERT_TRUE(sample_writer(&keep).write(dir.file("a.gguf")).ok());
  const auto full = read_bytes(dir.file("a.gguf"));
  const size_t header_end = size_t(GgufFile::open(dir.file("a.gguf"))->data_offset());
  int failures = 0;
  for (size_t i = 0; i < header_end; ++i) {
    for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(0x80)}) {
      auto bytes = full;
      bytes[i] = v;
      auto f = parse_bytes(dir, bytes);
      if (!f.ok()) {
        ++failures;
        continue;
      }
      for (const TensorInfo& t : f->tensor_infos())
        ASSERT_LE(f->data_offset() + t.offset + t.size_bytes, bytes.size());
    }
  }
  EXPECT_GT(failures, 0);
}

TEST(GgufTest, WriterRejectsBadInput) {
  TempDir dir;
  GgufWriter w;
  const auto four = f32_bytes({1, 2, 3, 4});
  EXPECT_EQ(w.add_tensor(std::string(64, 'n'), GgmlType::kF32, {4}, four).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("", GgmlType::kF32, {4}, four).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("t", GgmlType::kF32, {5}, four).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("t", GgmlType::kF32, {1, 1, 1, 1, 4}, four).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("t", GgmlType::kQ8_0, {4}, four).code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(w.add_tensor("t", GgmlType::kF32, {4}, four).ok());
  EXPECT_EQ(w.add_tensor("t", GgmlType::kF32, {4}, four).code(), ErrorCode::kInvalidArgument);

  w.metadata().set("bad", Value::scalar(ValueType::kU8, uint64_t{256}));
  EXPECT_EQ(w.write(dir.file("x.gguf")).code(), ErrorCode::kInvalidArgument);
  w.metadata().set("bad", Value::scalar(ValueType::kU8, int64_t{1}));  // wrong representation
  EXPECT_EQ(w.write(dir.file("x.gguf")).code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(w.metadata().erase("bad"));
  w.metadata().set(kAlignmentKey, Value::u32(24));
  EXPECT_EQ(w.write(dir.file("x.gguf")).code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.gguf")));  // failed writes leave nothing
  w.metadata().set(kAlignmentKey, Value::u32(64));
  EXPECT_TRUE(w.write(dir.file("x.gguf")).ok());
}

TEST(GgufTest, MetadataGettersCheckTypesAndRanges) {
  Metadata m("src.gguf");
  m.set("neg", Value::i32(-1));
  m.set("big", Value::u64(uint64_t(1) << 40));
  m.set("s", Value::string("x"));
  m.set("f", Value::f32(1.0f));
  EXPECT_EQ(m.get_uint("neg").status().code(), ErrorCode::kFormat);
  EXPECT_EQ(m.get_u32("big").status().code(), ErrorCode::kFormat);
  EXPECT_EQ(*m.get_uint("big"), uint64_t(1) << 40);
  EXPECT_EQ(m.get_u32("s").status().code(), ErrorCode::kFormat);
  EXPECT_EQ(m.get_float("neg").status().code(), ErrorCode::kFormat);  // no silent int -> float
  EXPECT_EQ(m.get_strings("s").status().code(), ErrorCode::kFormat);
  auto missing = m.get_string("nope");
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.status().message().find("src.gguf"), std::string::npos);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  // set() replaces in place, add() refuses a duplicate.
  m.set("neg", Value::i32(5));
  EXPECT_EQ(m.entries()[0].first, "neg");
  EXPECT_EQ(*m.get_int("neg"), 5);
  EXPECT_EQ(m.add("s", Value::string("y")).code(), ErrorCode::kFormat);
}

}  // namespace
}  // namespace lowbit::gguf
