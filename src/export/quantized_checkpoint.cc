#include "export/quantized_checkpoint.h"

#include "export/streaming_writer.h"

namespace lowbit {

Status save_quantized_checkpoint(const std::string& dir, const Checkpoint& ck, const QuantizedSaveOptions& o) {
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ck));
  // Every quantized weight of `ck` passes through the writer; its float tensors are converted to
  // o.float_dtype (and q/k rows reordered for rotate-half RoPE) as they are written.
  LOWBIT_ASSIGN_OR_RETURN(auto writer, QuantizedCheckpointWriter::create(dir, ck, {}, o));
  LOWBIT_RETURN_IF_ERROR(writer->write_source_tensors());
  return writer->commit();
}

}  // namespace lowbit
