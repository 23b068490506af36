#include "dist/wire.h"

#include <utility>

#include "core/coding.h"
#include "vigil/model.h"

namespace vigil::dist {
namespace {

constexpr uint32_t kMagic = 0x56474c32;  // "VGL2": both ends speak this version

}  // namespace

std::string EncodeModel(const ModelMessage& m) {
  std::string out;
  PutFixed(kMagic, &out);
  PutString(m.version, &out);
  PutString(m.kernel, &out);
  out.push_back(static_cast<char>(m.exact_reasons));
  out.push_back(static_cast<char>(m.explain));
  PutVarint(static_cast<uint64_t>(m.top_reasons), &out);
  PutVarint(static_cast<uint64_t>(m.threads), &out);
  PutString(m.model, &out);
  return out;
}

StatusOr<ModelMessage> DecodeModel(std::string_view bytes) {
  ByteReader r(bytes);
  ModelMessage m;
  if (r.Fixed<uint32_t>() != kMagic) return InvalidArgument("rank 0 runs another version of Vigil");
  r.String(&m.version);
  r.String(&m.kernel);
  m.exact_reasons = r.Byte() != 0;
  m.explain = r.Byte() != 0;
  m.top_reasons = static_cast<int>(r.Varint());
  m.threads = static_cast<int>(r.Varint());
  r.String(&m.model);
  if (!r.ok() || r.remaining() != 0 || m.threads < 1) {
    return InvalidArgument("the model message from rank 0 is malformed");
  }
  return m;
}

StatusOr<std::unique_ptr<Scorer>> BuildScorer(const ModelMessage& m) {
  VIGIL_ASSIGN_OR_RETURN(Kernel kernel, ParseKernel(m.kernel));
  VIGIL_ASSIGN_OR_RETURN(ModelFile file, ParseModel(m.model, "the model from rank 0"));
  return Scorer::Create(std::move(file), kernel,
                        m.exact_reasons ? ReasonsMethod::kExact : ReasonsMethod::kFast);
}

std::string EncodeSummary(const RankSummary& s) {
  std::string out;
  PutString(s.host, &out);
  PutString(s.kernel, &out);
  PutVarint(s.rows, &out);
  PutVarint(s.batches, &out);
  PutFixed(s.busy_seconds, &out);
  PutFixed(s.idle_seconds, &out);
  return out;
}

RankSummary DecodeSummary(int rank, std::string_view bytes) {
  ByteReader r(bytes);
  RankSummary s;
  s.rank = rank;
  r.String(&s.host);
  r.String(&s.kernel);
  s.rows = r.Varint();
  s.batches = r.Varint();
  s.busy_seconds = r.Fixed<double>();
  s.idle_seconds = r.Fixed<double>();
  return s;
}

}  // namespace vigil::dist
