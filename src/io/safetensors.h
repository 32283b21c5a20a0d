// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header {name: {"dtype", "shape", "data_offsets"},
// "__metadata__": {str: str}}, then the tensors' little-endian bytes.
//
// The reader trusts nothing: the header length, the JSON, every dtype, shape and offset pair
// are checked against the bytes actually present (the tensors must tile the data section
// exactly, as the reference implementation requires), and every error is an ait::Error naming
// the file and the tensor or field. The writer is atomic (temporary file + fsync + rename).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace ait {

// Bytes per element of a safetensors dtype ("F32", "I64", "U8", "BF16", ...); 0 when unknown.
size_t st_dtype_size(const std::string& dtype);

struct StTensor {
  std::string dtype = "F32";
  Shape shape;
  std::vector<uint8_t> bytes;  // little-endian element data
  // Context for error messages; filled by the reader and by SafeTensors::add().
  std::string name, source;

  // Element count (1 for shape []); throws when the product overflows.
  int64_t numel() const;
  // Typed copies. Each checks the dtype and that the byte count matches the shape.
  std::vector<float> f32() const;    // F32
  std::vector<int32_t> i32() const;  // I32, or I64 with every value within int32
  std::vector<int64_t> i64() const;  // I32 or I64
  std::vector<uint8_t> u8() const;   // U8
  // "<source>: tensor '<name>'" for messages.
  std::string where() const;

  // Factories; the value count must equal the shape's element count.
  static StTensor from_f32(const Shape& shape, const std::vector<float>& values);
  static StTensor from_i32(const Shape& shape, const std::vector<int32_t>& values);
  static StTensor from_i64(const Shape& shape, const std::vector<int64_t>& values);
  static StTensor from_u8(const Shape& shape, const std::vector<uint8_t>& values);
  static StTensor from_u8(const Shape& shape, std::vector<uint8_t>&& values);
};

struct SafeTensors {
  std::string source;  // file name (or the name given to parse_safetensors) for messages
  std::map<std::string, std::string> metadata;
  std::map<std::string, StTensor> tensors;  // by name

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  // Throws "<source>: no tensor '<name>'" when absent.
  const StTensor& get(const std::string& name) const;
  // Adds a tensor; throws on a duplicate or reserved name, an unknown dtype or a byte count
  // that does not match the shape.
  void add(const std::string& name, StTensor t);
};

SafeTensors parse_safetensors(const uint8_t* data, size_t n, const std::string& source);
SafeTensors read_safetensors(const std::string& path);
// The file bytes: header keys sorted by name ("__metadata__" first when there is metadata),
// header padded with spaces to a multiple of 8, data laid out by element size (largest first)
// then name, so every tensor is aligned to its element size.
std::vector<uint8_t> serialize_safetensors(const SafeTensors& st);
// Atomic: see write_file_atomic (inflate.h).
void write_safetensors(const std::string& path, const SafeTensors& st);

}  // namespace ait
