#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "testing/testing.h"

namespace lowbit {
namespace {

using ::lowbit::testing::TempDir;

// A file image: uint64 header length, the header text as given, then `buffer`.
std::vector<uint8_t> file_image(const std::string& header, const std::vector<uint8_t>& buffer) {
  std::vector<uint8_t> out(8 + header.size() + buffer.size());
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::copy(buffer.begin(), buffer.end(), out.begin() + 8 + std::ptrdiff_t(header.size()));
  return out;
}

std::vector<uint8_t> iota_bytes(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 7 + 1);
  return v;
}

// Writes `image` to a file and reads it; the result must fail with `code` and a message that
// names the file and contains `fragment` (usually the tensor name).
void expect_rejected(const std::vector<uint8_t>& image, ErrorCode code, const std::string& fragment) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  testing::write_bytes(path, image);
  auto r = read_safetensors(path);
  ASSERT_FALSE(r.ok()) << "accepted a bad file; expected an error mentioning " << fragment;
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

TEST(Safetensors, ReadsAHandBuiltFile) {
  // What the reference implementation writes for {"b": int8 [3], "a": f32 [2]} plus metadata,
  // with the spaces it pads the header with.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"I8","shape":[3],"data_offsets":[8,11]}}   )";
  const float a[2] = {1.5f, -2.0f};
  std::vector<uint8_t> buffer(11);
  std::memcpy(buffer.data(), a, 8);
  buffer[8] = 0xff, buffer[9] = 0x00, buffer[10] = 0x7f;
  TempDir dir;
  testing::write_bytes(dir.file("x.safetensors"), file_image(header, buffer));
  auto set = read_safetensors(dir.file("x.safetensors"));
  ASSERT_TRUE(set.ok()) << set.status().message();
  ASSERT_EQ(set->tensors().size(), 2u);
  EXPECT_EQ(set->metadata().at("format"), "pt");
  const RawTensor* ta = set->find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->dtype, DType::kF32);
  EXPECT_EQ(ta->shape, std::vector<int64_t>{2});
  float got[2];
  ASSERT_EQ(ta->data.size(), 8u);
  std::memcpy(got, ta->data.data(), 8);
  EXPECT_EQ(got[0], 1.5f);
  EXPECT_EQ(got[1], -2.0f);
  const RawTensor* tb = set->find("b");
  ASSERT_NE(tb, nullptr);
  EXPECT_EQ(tb->dtype, DType::kI8);
  EXPECT_EQ(std::vector<uint8_t>(tb->data.begin(), tb->data.end()), (std::vector<uint8_t>{0xff, 0x00, 0x7f}));
}

TEST(Safetensors, EmptyHeaderAndZeroSizeTensorsAreValid) {
  {
    auto r = parse_safetensors(file_image("{}", {}), "empty");
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(r->tensors.empty());
  }
  // Two empty tensors at the same offset as a real one do not overlap it.
  const std::string header =
      R"({"e1":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
      R"("e2":{"dtype":"F16","shape":[0],"data_offsets":[2,2]},"s":{"dtype":"F32","shape":[],"data_offsets":[2,6]}})";
  auto r = parse_safetensors(file_image(header, iota_bytes(6)), "zeros");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->tensors.size(), 4u);
  for (const RawTensor& t : r->tensors) {
    if (t.name == "s") {
      EXPECT_TRUE(t.shape.empty());  // a scalar: one element
      EXPECT_EQ(t.data.size(), 4u);
    }
    if (t.name == "e1") {
      EXPECT_EQ(t.data.size(), 0u);
    }
  }
}

TEST(Safetensors, RoundTripPreservesEverythingAndAligns) {
  TensorSet set;
  const std::vector<uint8_t> f16 = iota_bytes(2 * 3);        // F16 [3]: odd element count
  const std::vector<uint8_t> i8 = iota_bytes(5);             // I8 [5]
  const std::vector<uint8_t> f32 = iota_bytes(4 * 2 * 3);    // F32 [2, 3]
  const std::vector<uint8_t> bf16 = iota_bytes(2 * 7);       // BF16 [7]
  const std::vector<uint8_t> i64 = iota_bytes(8 * 2);        // I64 [2]
  ASSERT_TRUE(set.add_owned("h", DType::kF16, {3}, f16).ok());
  ASSERT_TRUE(set.add_owned("q", DType::kI8, {5}, i8).ok());
  ASSERT_TRUE(set.add_owned("w", DType::kF32, {2, 3}, f32).ok());
  ASSERT_TRUE(set.add_owned("b", DType::kBF16, {7}, bf16).ok());
  ASSERT_TRUE(set.add_owned("z", DType::kF32, {0, 3}, {}).ok());
  ASSERT_TRUE(set.add_owned("l", DType::kI64, {2}, i64).ok());
  set.metadata()["format"] = "pt";
  set.metadata()["note"] = "héllo \"quoted\"";

  TempDir dir;
  const std::string path = dir.file("rt.safetensors");
  ASSERT_TRUE(write_safetensors(path, set).ok());

  const std::vector<uint8_t> bytes = testing::read_bytes(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u) << "header must be padded so the buffer is 8-aligned";

  auto back = read_safetensors(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->metadata(), set.metadata());
  ASSERT_EQ(back->tensors().size(), set.tensors().size());
  for (const RawTensor& t : set.tensors()) {
    const RawTensor* b = back->find(t.name);
    ASSERT_NE(b, nullptr) << t.name;
    EXPECT_EQ(b->dtype, t.dtype) << t.name;
    EXPECT_EQ(b->shape, t.shape) << t.name;
    EXPECT_EQ(std::vector<uint8_t>(b->data.begin(), b->data.end()),
              std::vector<uint8_t>(t.data.begin(), t.data.end()))
        << t.name;
    // Every tensor starts at a multiple of its element size within the file.
    const size_t file_offset = size_t(b->data.data() - back->tensors().front().data.data()) + 8 + header_len;
    EXPECT_EQ(file_offset % dtype_size(b->dtype), 0u) << t.name;
  }
  // Buffer order: by element size, then the caller's order.
  std::vector<std::string> order;
  for (const RawTensor& t : back->tensors()) order.push_back(t.name);
  EXPECT_EQ(order, (std::vector<std::string>{"l", "w", "z", "h", "b", "q"}));

  // Writing the same set again gives the same bytes (deterministic output).
  ASSERT_TRUE(write_safetensors(dir.file("rt2.safetensors"), set).ok());
  EXPECT_EQ(testing::read_bytes(dir.file("rt2.safetensors")), bytes);
}

TEST(Safetensors, EmptySetRoundTrips) {
  TempDir dir;
  ASSERT_TRUE(write_safetensors(dir.file("e.safetensors"), TensorSet()).ok());
  auto back = read_safetensors(dir.file("e.safetensors"));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->tensors().empty());
  EXPECT_TRUE(back->metadata().empty());
}

TEST(Safetensors, WriterRefusesInconsistentTensors) {
  TempDir dir;
  const std::vector<uint8_t> bytes = iota_bytes(8);
  RawTensor a{"a", DType::kF32, {2}, bytes};
  RawTensor wrong_size{"w", DType::kF32, {3}, bytes};
  RawTensor reserved{"__metadata__", DType::kU8, {8}, bytes};
  RawTensor negative{"n", DType::kU8, {-8}, bytes};
  for (auto [tensors, fragment] : std::vector<std::pair<std::vector<const RawTensor*>, std::string>>{
           {{&a, &a}, "\"a\" given twice"},
           {{&wrong_size}, "\"w\" has 8 bytes"},
           {{&reserved}, "reserved"},
           {{&negative}, "negative"}}) {
    Status s = write_safetensors(dir.file("x.safetensors"), tensors);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << fragment;
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.safetensors"))) << "a refused write must leave no file";
}

// --- hostile input: one case per rule, each a hand-built byte vector --------------------------

TEST(SafetensorsHostile, TooShortForTheLengthPrefix) {
  expect_rejected({1, 2, 3}, ErrorCode::kFormat, "too short");
}

TEST(SafetensorsHostile, HeaderLongerThanTheFile) {
  std::vector<uint8_t> image = file_image("{}", {});
  image[0] = 200;  // claims 200 header bytes, file has 2
  expect_rejected(image, ErrorCode::kFormat, "larger than the rest of the file");
}

TEST(SafetensorsHostile, HeaderOverTheCap) {
  std::vector<uint8_t> image = file_image("{}", {});
  const uint64_t huge = kSafetensorsMaxHeaderBytes + 1;
  std::memcpy(image.data(), &huge, 8);
  expect_rejected(image, ErrorCode::kResource, "exceeds");
  const uint64_t max = ~uint64_t(0);
  std::memcpy(image.data(), &max, 8);
  expect_rejected(image, ErrorCode::kResource, "exceeds");
}

TEST(SafetensorsHostile, MalformedJson) {
  expect_rejected(file_image(R"({"a":{"dtype":"F32",)", {}), ErrorCode::kFormat, "malformed JSON");
  expect_rejected(file_image("", {}), ErrorCode::kFormat, "malformed JSON");
  expect_rejected(file_image("[1,2]", {}), ErrorCode::kFormat, "not a JSON object");
  expect_rejected(file_image("{\"a\":\"\xff\"}", {}), ErrorCode::kFormat, "malformed JSON");  // bad UTF-8
}

TEST(SafetensorsHostile, UnknownDtype) {
  expect_rejected(file_image(R"({"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", iota_bytes(1)),
                  ErrorCode::kUnsupported, "\"t\": unsupported dtype \"F4\"");
}

TEST(SafetensorsHostile, MissingOrMistypedFields) {
  expect_rejected(file_image(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", iota_bytes(8)), ErrorCode::kFormat,
                  "\"t\": missing or non-string \"dtype\"");
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", iota_bytes(8)),
                  ErrorCode::kFormat, "\"t\": missing or non-array \"shape\"");
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", iota_bytes(8)),
                  ErrorCode::kFormat, "\"t\": shape [2.5] has a non-integer");
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", iota_bytes(8)),
                  ErrorCode::kFormat, "\"t\": \"data_offsets\"");
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", iota_bytes(8)),
                  ErrorCode::kFormat, "\"t\": \"data_offsets\"");
  expect_rejected(file_image(R"({"t":[1]})", iota_bytes(8)), ErrorCode::kFormat, "\"t\": header entry");
  expect_rejected(file_image(R"({"__metadata__":{"k":1}})", {}), ErrorCode::kFormat, "\"k\" is not a string");
}

TEST(SafetensorsHostile, OffsetsOutsideTheBuffer) {
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", iota_bytes(8)),
                  ErrorCode::kFormat, "\"t\": data_offsets [4, 12] extend past the data buffer (8 bytes)");
  expect_rejected(file_image(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})", {}),
                  ErrorCode::kFormat, "\"t\": data_offsets");
}

TEST(SafetensorsHostile, EndBeforeBegin) {
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", iota_bytes(8)),
                  ErrorCode::kFormat, "\"t\": data_offsets [8, 0] end before begin");
}

TEST(SafetensorsHostile, SizeDoesNotMatchShape) {
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", iota_bytes(8)),
                  ErrorCode::kFormat, "\"t\": data_offsets [0, 8] hold 8 bytes but F32 [3] needs 12");
}

TEST(SafetensorsHostile, ElementCountOverflow) {
  // 2^62 * 2^62 overflows uint64; without the check the product would wrap to 0 and match [0, 0].
  expect_rejected(
      file_image(R"({"t":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,0],"data_offsets":[0,0]}})", {}),
      ErrorCode::kFormat, "\"t\": shape");
  // 2^62 elements fit int64 but 2^62 * 4 bytes wraps to 0.
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", {}),
                  ErrorCode::kFormat, "\"t\": shape [4611686018427387904] is too large");
  // Above int64: RawTensor::numel() could not represent it.
  expect_rejected(file_image(R"({"t":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}})", {}),
                  ErrorCode::kFormat, "\"t\": shape");
}

TEST(SafetensorsHostile, NegativeDimension) {
  expect_rejected(file_image(R"({"t":{"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]}})", iota_bytes(8)),
                  ErrorCode::kFormat, "\"t\": negative dimension -2");
}

TEST(SafetensorsHostile, OverlappingTensors) {
  expect_rejected(file_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             iota_bytes(12)),
                  ErrorCode::kFormat, "tensor \"b\" (bytes [4, 12)) overlaps tensor \"a\"");
  // The same bytes declared twice under two names is an overlap too.
  expect_rejected(file_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                             iota_bytes(8)),
                  ErrorCode::kFormat, "overlaps tensor \"a\"");
}

TEST(SafetensorsHostile, HoleInTheBuffer) {
  expect_rejected(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                             iota_bytes(12)),
                  ErrorCode::kFormat, "tensor \"b\" starts at byte 8 leaving a hole of 4 bytes");
}

TEST(SafetensorsHostile, TrailingBytesNotCovered) {
  expect_rejected(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", iota_bytes(6)),
                  ErrorCode::kFormat, "cover 4 bytes of the 6-byte data buffer");
}

TEST(SafetensorsHostile, DuplicateNames) {
  expect_rejected(file_image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                             iota_bytes(2)),
                  ErrorCode::kFormat, "key \"a\" more than once");
  // Inside an entry too: a second "shape" must not silently replace the first.
  expect_rejected(file_image(R"({"a":{"dtype":"U8","shape":[1],"shape":[2],"data_offsets":[0,1]}})", iota_bytes(1)),
                  ErrorCode::kFormat, "key \"shape\" more than once");
}

TEST(SafetensorsHostile, MissingFileIsAnIoError) {
  TempDir dir;
  auto r = read_safetensors(dir.file("nope.safetensors"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kIo);
}

}  // namespace
}  // namespace lowbit
