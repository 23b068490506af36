#include "core/transaction_json.h"

#include "core/hash.h"

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "vigil/time.h"

namespace vigil {
namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;

// Our own validation failures travel as simdjson error codes, so that every reason to abandon the
// fast path takes one road to the cold path (JsonProblem).
constexpr error_code kBadString = simdjson::STRING_ERROR;
constexpr error_code kBadNumber = simdjson::NUMBER_ERROR;
constexpr error_code kBadAtom = simdjson::T_ATOM_ERROR;
constexpr error_code kBadToken = simdjson::TAPE_ERROR;
constexpr error_code kTooDeep = simdjson::DEPTH_ERROR;
// A number too large for a double: nlohmann::json refuses those, so we do too.
constexpr error_code kNumberOverflow = simdjson::NUMBER_OUT_OF_RANGE;
// The body is well-formed so far but not the object (or array) we want.
constexpr error_code kWrongRoot = simdjson::INCORRECT_TYPE;
constexpr error_code kTrailing = simdjson::TRAILING_CONTENT;

constexpr size_t kMaxTimestampLength = 64;
constexpr size_t kMaxQuotedLength = 200;  // bytes of the input quoted back in a message

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && IsJsonSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsJsonSpace(s.front())) s.remove_prefix(1);
  return TrimRight(s);
}

std::string_view StripBom(std::string_view s) {
  if (s.size() >= 3 && s.substr(0, 3) == "\xEF\xBB\xBF") s.remove_prefix(3);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ReadHex4(const char* p, const char* limit, uint32_t* out) {
  if (limit - p < 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    int h = HexValue(p[i]);
    if (h < 0) return false;
    v = v << 4 | static_cast<uint32_t>(h);
  }
  *out = v;
  return true;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | cp >> 6));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | cp >> 12));
    out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | cp >> 18));
    out->push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Scans the body of a JSON string, `p` just past its opening quote, up to `limit`. Checks it as
// nlohmann::json does (RFC 8259 escapes only, no raw control characters, \u surrogates in pairs;
// UTF-8 itself was checked by simdjson over the whole input). Appends the decoded text to *out
// when out != nullptr. Returns the pointer just past the closing quote, or nullptr when the string
// is invalid or does not end before `limit`.
// REQUIRES: [p, limit) lies in the padded buffer (Load): the input is followed by zeroed
// padding, so the word-at-a-time reads stop at its first byte, a control character, at the latest.
const char* ScanString(const char* p, const char* limit, std::string* out, bool* escaped) {
  // Eight bytes at a time while none can be a quote, a backslash or a control character (SWAR:
  // bytes above the first special one may be flagged falsely, the first one never is). A word
  // may run past `limit` into the rest of the input or the padding; what is found there is
  // refused below.
  static_assert(std::endian::native == std::endian::little, "the SWAR scan assumes little-endian");
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHighs = 0x8080808080808080ull;
  auto has_zero_byte = [](uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  const char* run = p;
  while (p < limit) {
    for (;;) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      const uint64_t special = has_zero_byte(w ^ (kOnes * '"')) |
                               has_zero_byte(w ^ (kOnes * '\\')) |
                               ((w - kOnes * 0x20) & ~w & kHighs);
      if (special != 0) {
        p += std::countr_zero(special) / 8;  // the lowest flagged byte is a true one
        break;
      }
      p += 8;
    }
    if (p >= limit) return nullptr;
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"') {
      if (out != nullptr) out->append(run, p);
      return p + 1;
    }
    if (c < 0x20) return nullptr;
    if (c != '\\') {
      ++p;
      continue;
    }
    if (out != nullptr) out->append(run, p);
    *escaped = true;
    if (++p >= limit) return nullptr;
    char decoded;
    switch (*p++) {
      case '"':
        decoded = '"';
        break;
      case '\\':
        decoded = '\\';
        break;
      case '/':
        decoded = '/';
        break;
      case 'b':
        decoded = '\b';
        break;
      case 'f':
        decoded = '\f';
        break;
      case 'n':
        decoded = '\n';
        break;
      case 'r':
        decoded = '\r';
        break;
      case 't':
        decoded = '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (!ReadHex4(p, limit, &cp)) return nullptr;
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return nullptr;  // a low surrogate first
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t low;
          if (limit - p < 6 || p[0] != '\\' || p[1] != 'u' || !ReadHex4(p + 2, limit, &low) ||
              low < 0xDC00 || low > 0xDFFF) {
            return nullptr;
          }
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        if (out != nullptr) AppendUtf8(cp, out);
        run = p;
        continue;
      }
      default:
        return nullptr;
    }
    if (out != nullptr) out->push_back(decoded);
    run = p;
  }
  return nullptr;
}

// True when `s` is exactly a JSON number (RFC 8259 §6); *integer: it has no fraction or exponent.
bool IsJsonNumber(std::string_view s, bool* integer) {
  size_t i = 0;
  const size_t n = s.size();
  auto digits = [&] {
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  };
  if (i < n && s[i] == '-') ++i;
  if (i < n && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  *integer = true;
  if (i < n && s[i] == '.') {
    ++i;
    if (!digits()) return false;
    *integer = false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
    *integer = false;
  }
  return i == n;
}

// For a valid JSON number that a double cannot hold: true when it is too large (rather than too
// small, which reads as zero). Compares the position of its first significant digit plus its
// exponent with zero; only the sign of that matters, as both limits are hundreds of decades away.
bool IsOverflow(std::string_view s) {
  size_t i = s.empty() || s[0] != '-' ? 0 : 1;
  int64_t magnitude = 0;  // decimal exponent of the first significant digit, before 'e'
  bool found = false;
  int64_t int_digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (found || s[i] != '0') {
      found = true;
      ++int_digits;
    }
    ++i;
  }
  if (found) {
    magnitude = int_digits - 1;
  } else if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t zeros = 0;
    while (i < s.size() && s[i] == '0') ++zeros, ++i;
    if (i >= s.size() || s[i] < '1' || s[i] > '9') return false;  // the number is zero
    magnitude = -(zeros + 1);
  }
  while (i < s.size() && s[i] != 'e' && s[i] != 'E') ++i;
  if (i < s.size()) {
    ++i;
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
    int64_t e = 0;
    for (; i < s.size(); ++i) e = std::min<int64_t>(e * 10 + (s[i] - '0'), int64_t{1} << 40);
    magnitude += negative ? -e : e;
  }
  return magnitude > 0;
}

// Checks a number's token (trailing spaces trimmed). *integer as for IsJsonNumber.
error_code CheckNumberToken(std::string_view token, bool* integer) {
  if (!IsJsonNumber(token, integer)) return kBadNumber;
  // Only a number with an exponent or hundreds of digits can overflow a double.
  if (*integer && token.size() < 300) return simdjson::SUCCESS;
  if (token.find_first_of("eE") == std::string_view::npos && token.size() < 300) {
    return simdjson::SUCCESS;
  }
  double d;
  auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), d);
  if (ec == std::errc::result_out_of_range && IsOverflow(token)) return kNumberOverflow;
  return simdjson::SUCCESS;
}

size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string_view TypeName(od::json_type t) {
  switch (t) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "a value";
}

// Replaces bytes that are not valid UTF-8 with U+FFFD and cuts after about `max_bytes`, so a
// message that quotes the input can go into a JSON reply whatever the input was.
std::string SanitizeUtf8(std::string_view s, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (out.size() >= max_bytes) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool valid = len > 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (valid && len > 1) {  // overlong forms, surrogates, > U+10FFFF
      uint32_t cp = c & (0x7F >> len);
      for (size_t k = 1; k < len; ++k) cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      valid = cp >= kMin[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (valid) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// nlohmann::json SAX handler that builds nothing: the cold path only wants the first error.
class FirstErrorSax {
 public:
  using json = nlohmann::json;
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) { return true; }
  bool string(json::string_t&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) { return true; }
  bool key(json::string_t&) { return true; }
  bool end_object() { return true; }
  bool start_array(std::size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) {
    failed = true;
    offset = position;
    what = ex.what();
    return false;
  }

  bool failed = false;
  size_t offset = 0;
  std::string what;
};

// The 1-based line and column of byte `index` of `body` (index == size: just past the end).
std::string Position(std::string_view body, size_t index) {
  const std::string_view before = body.substr(0, std::min(index, body.size()));
  const size_t line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
  const size_t last_newline = before.rfind('\n');
  const size_t column = last_newline == std::string_view::npos ? index + 1 : index - last_newline;
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// "malformed JSON at line L, column C: <why>", in nlohmann's words. The position is that of the
// last byte nlohmann read (its offset counts bytes read, end of input included). Unlike
// nlohmann's own message, a newline that ended a bad token is placed at the end of its line
// rather than at column 0 of the next.
std::string MalformedMessage(std::string_view body, const FirstErrorSax& sax) {
  const size_t index = std::min(sax.offset == 0 ? 0 : sax.offset - 1, body.size());
  // ex.what(): "[json.exception.parse_error.101] parse error at line 1, column 17: <why>", or
  // "[json.exception.out_of_range.406] <why>".
  std::string_view why = sax.what;
  if (size_t at = why.find("column "); at != std::string_view::npos) {
    if (size_t colon = why.find(": ", at); colon != std::string_view::npos)
      why.remove_prefix(colon + 2);
  } else if (size_t bracket = why.find("] "); bracket != std::string_view::npos) {
    why.remove_prefix(bracket + 2);
  }
  return "malformed JSON at " + Position(body, index) + ": " + SanitizeUtf8(why, kMaxQuotedLength);
}

// The fields of the contract, in the order their problems are listed.
enum Slot : int {
  kTransactionId,
  kCustomerId,
  kTerminalId,
  kVendorId,
  kAmount,
  kTimestamp,
  kCurrency,
  kStatus,
  kMetadata,
  kNumSlots,
  kUnknown = kNumSlots,
};

constexpr std::string_view kSlotName[kNumSlots] = {"transaction_id", "customer_id", "terminal_id",
                                                   "vendor_id",      "amount",      "timestamp",
                                                   "currency",       "status",      "metadata"};

Slot FindSlot(std::string_view key) {
  switch (key.size()) {
    case 14:
      return key == "transaction_id" ? kTransactionId : kUnknown;
    case 11:
      return key == "customer_id" ? kCustomerId : key == "terminal_id" ? kTerminalId : kUnknown;
    case 9:
      return key == "vendor_id" ? kVendorId : key == "timestamp" ? kTimestamp : kUnknown;
    case 6:
      return key == "amount" ? kAmount : key == "status" ? kStatus : kUnknown;
    case 8:
      return key == "currency" ? kCurrency : key == "metadata" ? kMetadata : kUnknown;
    default:
      return kUnknown;
  }
}

constexpr int64_t kNoIndex = -1;

}  // namespace

int64_t IdKey(std::string_view id) {
  if (!id.empty() && id.size() <= 19 && (id.size() == 1 || id[0] != '0')) {
    uint64_t v = 0;
    bool digits = true;
    for (char c : id) {
      if (c < '0' || c > '9') {
        digits = false;
        break;
      }
      v = v * 10 + static_cast<uint64_t>(c - '0');  // 19 digits < 2^64: no wrap
    }
    if (digits && v <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v);
  }
  return static_cast<int64_t>(Fnv1a64(id) & 0x7FFFFFFFFFFFFFFFull);
}

class TransactionParser::Impl {
 public:
  Status Parse(std::string_view body, Transaction* out, std::vector<FieldProblem>* problems,
               const TransactionParseOptions& options);
  Status ParseBatch(std::string_view body, size_t max_items, std::vector<Transaction>* out,
                    std::vector<FieldProblem>* problems);
  Status ParseMessages(std::string_view body, size_t max_items, std::vector<MessageText>* out,
                       std::vector<FieldProblem>* problems, bool* batch);

 private:
  // One field of a push message object: "content", "message_type" or another (checked, ignored).
  error_code MessageField(std::string_view key, od::value& v, int depth, MessageText* out,
                          bool* content, std::string* type_problem);
  // The problems of a message object, on "<prefix>content" and "<prefix>message_type".
  void MessageProblems(const std::string& prefix, bool content, const std::string& type_problem);
  // The JSON text of `v` (consumed, and checked all the way down).
  error_code ValueText(od::value& v, int depth, std::string* text);
  // Copies `text` into the padded buffer (grown when too small, never per call otherwise).
  simdjson::padded_string_view Load(std::string_view text);

  error_code ParseRootObject(od::document& doc, Transaction* out);
  error_code ParseBatchRoot(od::document& doc, size_t max_items,
                            std::vector<Transaction>* out);
  error_code ParseItems(od::array& items, int depth, size_t max_items,
                        std::vector<Transaction>* out);
  // Parses one transaction object whose fields are at `depth`; its problems go to problems_,
  // on fields prefixed "transactions[index]." unless index == kNoIndex.
  error_code ParseTransaction(od::object& obj, int depth, int64_t index, Transaction* out);
  error_code ParseId(od::value& v, int depth, Slot slot, std::string* text);
  error_code ParseAmount(od::value& v, int depth, Transaction* out);
  error_code ParseTimestamp(od::value& v, int depth, Transaction* out);
  error_code ParseEnumString(od::value& v, int depth, Slot slot, std::string* text);
  error_code ParseMetadata(od::value& v, int depth);
  // Sets the slot's problem "<name> must be <what>, not <type>" and checks the value anyway.
  error_code WrongType(od::value& v, int depth, od::json_type type, Slot slot,
                       std::string_view what);

  // Checks that a value, at nesting depth `depth`, is well-formed JSON, all the way down.
  error_code Validate(od::value& v, int depth);
  error_code ValidateObject(od::object& obj, int depth);
  // Checks a string value, decodes it into *out when out != nullptr (*out is not cleared
  // first), and consumes it. Consuming matters: On-Demand skips an unconsumed string followed by
  // ':' as if it were a key, and then the rest of its container unchecked: [1,"b":"c"} passed.
  error_code ReadString(od::value& v, std::string* out);
  // Checks a key (raw: just past its opening quote) and returns it decoded.
  error_code ReadKey(const char* raw, std::string_view* key);
  // The document must end after the root value.
  error_code CheckEnd(od::document& doc);

  void AddProblem(std::string field, std::string problem);
  // The single problem that replaces all others when the fast path gave up with `e`.
  FieldProblem JsonProblem(std::string_view body, error_code e, std::string_view expected);
  Status Summarise(std::string_view what);

  od::parser parser_;
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
  const char* input_end_ = nullptr;
  // Whether the input holds a backslash. Without one no string has an escape to check or
  // decode, and simdjson's first pass has already refused raw control characters and bad UTF-8,
  // so every string is valid and is its bytes between the quotes: the common case, made fast.
  bool has_backslash_ = true;
  od::json_type root_type_ = od::json_type::object;

  std::vector<FieldProblem>* problems_ = nullptr;
  size_t omitted_ = 0;

  // Per transaction object.
  bool seen_[kNumSlots] = {};
  bool amount_overflow_ = false;  // some "amount" did not fit a double
  std::string slot_problem_[kNumSlots];
  std::string vendor_id_;
  TransactionParseOptions options_;
  std::string key_scratch_;
  std::string text_scratch_;
};

TransactionParser::TransactionParser() : impl_(std::make_unique<Impl>()) {}
TransactionParser::~TransactionParser() = default;

Status TransactionParser::Parse(std::string_view body, Transaction* out,
                                std::vector<FieldProblem>* problems,
                                const TransactionParseOptions& options) {
  return impl_->Parse(body, out, problems, options);
}

Status TransactionParser::ParseMessages(std::string_view body, size_t max_items,
                                        std::vector<MessageText>* out,
                                        std::vector<FieldProblem>* problems, bool* batch) {
  bool ignored = false;
  return impl_->ParseMessages(body, max_items, out, problems, batch != nullptr ? batch : &ignored);
}

Status TransactionParser::ParseBatch(std::string_view body, size_t max_items,
                                     std::vector<Transaction>* out,
                                     std::vector<FieldProblem>* problems) {
  return impl_->ParseBatch(body, max_items, out, problems);
}

simdjson::padded_string_view TransactionParser::Impl::Load(std::string_view text) {
  const size_t needed = text.size() + simdjson::SIMDJSON_PADDING;
  if (needed > capacity_) {
    capacity_ = std::max(needed, capacity_ * 2);
    buffer_ = std::make_unique<char[]>(capacity_);
  }
  if (!text.empty()) std::memcpy(buffer_.get(), text.data(), text.size());
  std::memset(buffer_.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  input_end_ = buffer_.get() + text.size();
  has_backslash_ = std::memchr(buffer_.get(), '\\', text.size()) != nullptr;
  return simdjson::padded_string_view(buffer_.get(), text.size(), capacity_);
}

void TransactionParser::Impl::AddProblem(std::string field, std::string problem) {
  if (problems_->size() >= kMaxFieldProblems) {
    ++omitted_;
    return;
  }
  problems_->push_back({std::move(field), std::move(problem)});
}

Status TransactionParser::Impl::Summarise(std::string_view what) {
  if (problems_->empty()) return Status::Ok();
  const size_t more = problems_->size() - 1 + omitted_;
  if (omitted_ > 0) {
    problems_->push_back({"", std::to_string(omitted_) + " more problems not listed"});
  }
  const FieldProblem& first = problems_->front();
  std::string message = "invalid " + std::string(what) + ": ";
  // "transactions[3].amount" → "transactions[3]: amount must be ...".
  if (first.field.starts_with("transactions[")) {
    if (size_t dot = first.field.find("]."); dot != std::string::npos) {
      message += first.field.substr(0, dot + 1) + ": ";
    }
  }
  message += first.problem;
  if (more > 0) {
    message += " (and " + std::to_string(more) + (more == 1 ? " more problem)" : " more problems)");
  }
  return InvalidArgument(std::move(message));
}

FieldProblem TransactionParser::Impl::JsonProblem(std::string_view body, error_code e,
                                                  std::string_view expected) {
  FirstErrorSax sax;
  bool accepted = false;
  try {
    accepted = nlohmann::json::sax_parse(body.begin(), body.end(), &sax);
  } catch (const std::exception& ex) {  // not expected from a SAX parse; never let one escape
    sax.failed = true;
    sax.what = ex.what();
  }
  if (!accepted && sax.failed) return {"", MalformedMessage(body, sax)};
  // nlohmann stops at a NUL byte as at the end of input, so it accepts "{}\0garbage".
  if (size_t nul = body.find('\0'); nul != std::string_view::npos) {
    return {"", "malformed JSON at " + Position(body, nul) + ": unexpected NUL byte"};
  }
  if (e == kTooDeep) {
    return {"", "JSON is nested more than " + std::to_string(kMaxJsonDepth) +
                    " levels deep, which is not accepted"};
  }
  if (e == kWrongRoot) {
    return {"",
            "body must be " + std::string(expected) + ", not " + std::string(TypeName(root_type_))};
  }
  // Only if simdjson refuses a body nlohmann::json accepts (the fuzz target checks for it).
  return {"", std::string("malformed JSON: ") + simdjson::error_message(e)};
}

error_code TransactionParser::Impl::ReadString(od::value& v, std::string* out) {
  const std::string_view token = v.raw_json_token();
  if (token.empty() || token.front() != '"') return kBadString;
  if (!has_backslash_) {
    // The token is the string and the spaces after it: its last byte is the closing quote.
    const std::string_view quoted = TrimRight(token);
    if (quoted.size() < 2 || quoted.back() != '"') return kBadString;
    const std::string_view text = quoted.substr(1, quoted.size() - 2);
    if (std::memchr(text.data(), '"', text.size()) != nullptr) return kBadToken;
    if (out != nullptr) out->append(text);
  } else {
    bool escaped = false;
    const char* limit = token.data() + token.size();
    const char* end = ScanString(token.data() + 1, limit, out, &escaped);
    if (end == nullptr) return kBadString;
    if (!TrimRight(std::string_view(end, static_cast<size_t>(limit - end))).empty()) {
      return kBadToken;
    }
  }
  od::raw_json_string raw;
  return v.get_raw_json_string().get(raw);
}

error_code TransactionParser::Impl::ReadKey(const char* raw, std::string_view* key) {
  if (!has_backslash_) {
    const void* quote = std::memchr(raw, '"', static_cast<size_t>(input_end_ - raw));
    if (quote == nullptr) return kBadString;
    *key = std::string_view(raw, static_cast<size_t>(static_cast<const char*>(quote) - raw));
    return simdjson::SUCCESS;
  }
  bool escaped = false;
  const char* end = ScanString(raw, input_end_, nullptr, &escaped);
  if (end == nullptr) return kBadString;
  if (!escaped) {
    *key = std::string_view(raw, static_cast<size_t>(end - 1 - raw));
    return simdjson::SUCCESS;
  }
  key_scratch_.clear();
  ScanString(raw, input_end_, &key_scratch_, &escaped);
  *key = key_scratch_;
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::Validate(od::value& v, int depth) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  switch (type) {
    case od::json_type::object: {
      if (depth > kMaxJsonDepth) return kTooDeep;
      od::object obj;
      if (auto e = v.get_object().get(obj)) return e;
      return ValidateObject(obj, depth + 1);
    }
    case od::json_type::array: {
      if (depth > kMaxJsonDepth) return kTooDeep;
      od::array arr;
      if (auto e = v.get_array().get(arr)) return e;
      for (auto item : arr) {
        od::value element;
        if (auto e = std::move(item).get(element)) return e;
        if (auto e = Validate(element, depth + 1)) return e;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::string:
      return ReadString(v, nullptr);
    case od::json_type::number: {
      bool integer;
      return CheckNumberToken(TrimRight(v.raw_json_token()), &integer);
    }
    case od::json_type::boolean: {
      std::string_view token = TrimRight(v.raw_json_token());
      return token == "true" || token == "false" ? simdjson::SUCCESS : kBadAtom;
    }
    case od::json_type::null:
      return TrimRight(v.raw_json_token()) == "null" ? simdjson::SUCCESS : kBadAtom;
  }
  return kBadToken;
}

error_code TransactionParser::Impl::ValidateObject(od::object& obj, int depth) {
  for (auto item : obj) {
    od::field field;
    if (auto e = std::move(item).get(field)) return e;
    std::string_view key;
    if (auto e = ReadKey(field.key().raw(), &key)) return e;
    if (auto e = Validate(field.value(), depth)) return e;
  }
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::CheckEnd(od::document& doc) {
  auto location = doc.current_location();
  return location.error() == simdjson::OUT_OF_BOUNDS ? simdjson::SUCCESS : kTrailing;
}

error_code TransactionParser::Impl::WrongType(od::value& v, int depth, od::json_type type,
                                              Slot slot, std::string_view what) {
  slot_problem_[slot] = std::string(kSlotName[slot]) + " must be " + std::string(what) + ", not " +
                        std::string(TypeName(type));
  return Validate(v, depth);
}

error_code TransactionParser::Impl::ParseId(od::value& v, int depth, Slot slot, std::string* text) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  text->clear();
  const std::string_view name = kSlotName[slot];
  if (type == od::json_type::string) {
    if (auto e = ReadString(v, text)) return e;
  } else if (type == od::json_type::number) {
    std::string_view token = TrimRight(v.raw_json_token());
    bool integer;
    if (auto e = CheckNumberToken(token, &integer)) return e;
    if (!integer) {
      slot_problem_[slot] = std::string(name) + " must be a string or an integer, not a number " +
                            "with a fraction or an exponent";
      return simdjson::SUCCESS;
    }
    text->assign(token);
  } else {
    return WrongType(v, depth, type, slot, "a string or an integer");
  }
  if (text->empty()) {
    slot_problem_[slot] = std::string(name) + " must not be empty";
  } else if (text->size() > kMaxIdLength && CodePoints(*text) > kMaxIdLength) {
    slot_problem_[slot] =
        std::string(name) + " must be at most " + std::to_string(kMaxIdLength) + " characters";
  }
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::ParseAmount(od::value& v, int depth, Transaction* out) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  if (type != od::json_type::number) return WrongType(v, depth, type, kAmount, "a number");
  std::string_view token = TrimRight(v.raw_json_token());
  bool integer;
  if (!IsJsonNumber(token, &integer)) return kBadNumber;
  double amount = 0;
  auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), amount);
  bool negative = token[0] == '-';
  if (ec == std::errc::result_out_of_range) {
    // Too large is out of our range: nlohmann::json would refuse the whole body, but "amount
    // must be at most" says more to the client (and should a later duplicate "amount" win,
    // ParseTransaction refuses the body as JSON after all). Too small for a double would read
    // as zero: a client that sent 1e-400 did not mean a free transaction, so say so.
    const bool overflow = IsOverflow(token);
    amount_overflow_ |= overflow;
    if (!overflow) {
      slot_problem_[kAmount] = "amount " + std::string(token.substr(0, 40)) +
                               " is too small to represent (it would be read as 0)";
      return simdjson::SUCCESS;
    }
    amount = (negative ? -1 : 2) * kMaxAmount;
  } else if (ec != std::errc() || ptr != token.data() + token.size()) {
    return kBadNumber;
  }
  if (amount < 0) {
    slot_problem_[kAmount] = "amount must not be negative";
  } else if (amount > kMaxAmount) {
    slot_problem_[kAmount] = "amount must be at most 1000000000";
  } else {
    out->amount = amount + 0.0;  // -0 becomes 0
  }
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::ParseTimestamp(od::value& v, int depth,
                                                   Transaction* out) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  if (type != od::json_type::string) {
    return WrongType(v, depth, type, kTimestamp,
                     "an RFC 3339 string such as \"2024-05-01T12:00:00Z\"");
  }
  text_scratch_.clear();
  if (auto e = ReadString(v, &text_scratch_)) return e;
  const std::string_view text = text_scratch_;
  if (text.size() > kMaxTimestampLength) {
    slot_problem_[kTimestamp] =
        "timestamp must be an RFC 3339 timestamp such as \"2024-05-01T12:00:00Z\" (got " +
        std::to_string(text.size()) + " bytes)";
    return simdjson::SUCCESS;
  }
  StatusOr<int64_t> t = ParseRfc3339(text);
  if (t.ok()) {
    if (*t < kMinTimestamp || *t >= kMaxTimestamp) {
      slot_problem_[kTimestamp] =
          "timestamp must be between 2000-01-01T00:00:00Z and 2099-12-31T23:59:59Z (got '" +
          text_scratch_ + "')";
      return simdjson::SUCCESS;
    }
    out->timestamp = *t;
    return simdjson::SUCCESS;
  }
  // Say precisely what is wrong where ParseRfc3339 is vague: a missing zone, or a date that
  // does not exist (it says "bad date" for 2018-02-30; ParseDate says why).
  if (StatusOr<int64_t> utc = ParseRfc3339(text_scratch_ + "Z"); utc.ok()) {
    if (options_.zoneless_timestamps_are_utc) {
      if (*utc < kMinTimestamp || *utc >= kMaxTimestamp) {
        slot_problem_[kTimestamp] =
            "timestamp must be between 2000-01-01T00:00:00 and 2099-12-31T23:59:59 UTC (got '" +
            text_scratch_ + "')";
      } else {
        out->timestamp = *utc;
      }
      return simdjson::SUCCESS;
    }
    slot_problem_[kTimestamp] = "timestamp '" + text_scratch_ +
                                "' has no time zone: add 'Z' for UTC or an offset such as +02:00";
    return simdjson::SUCCESS;
  }
  // (Only for an ASCII date: ParseDate quotes its 10 bytes, which must not split a character.)
  const std::string_view date = text.substr(0, 10);
  if (date.size() == 10 &&
      std::all_of(date.begin(), date.end(), [](char c) { return (c & 0x80) == 0; })) {
    if (StatusOr<int64_t> day = ParseDate(date); !day.ok()) {
      slot_problem_[kTimestamp] = "timestamp " + day.status().message();
      return simdjson::SUCCESS;
    }
  }
  // The text was valid UTF-8 in the JSON, so is the quote of it; sanitising is only a safety net
  // for the reply, which must be UTF-8.
  slot_problem_[kTimestamp] = SanitizeUtf8("timestamp " + t.status().message(), 1000);
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::ParseEnumString(od::value& v, int depth, Slot slot,
                                                    std::string* text) {
  text->clear();
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  const std::string_view rule = slot == kCurrency
                                    ? "a string of 3 upper-case letters such as \"EUR\""
                                    : "one of \"submitted\", \"accepted\", \"rejected\"";
  if (type == od::json_type::null) return Validate(v, depth);  // absent
  if (type != od::json_type::string) return WrongType(v, depth, type, slot, rule);
  if (auto e = ReadString(v, text)) return e;
  bool valid;
  if (slot == kCurrency) {
    valid = text->size() == 3 &&
            std::all_of(text->begin(), text->end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  } else {
    valid = *text == "submitted" || *text == "accepted" || *text == "rejected";
  }
  if (!valid) {
    slot_problem_[slot] = std::string(kSlotName[slot]) + " must be " + std::string(rule);
    text->clear();
  }
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::ParseMetadata(od::value& v, int depth) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  if (type == od::json_type::object || type == od::json_type::null) return Validate(v, depth);
  return WrongType(v, depth, type, kMetadata, "an object");
}

error_code TransactionParser::Impl::ParseTransaction(od::object& obj, int depth, int64_t index,
                                                     Transaction* out) {
  for (int s = 0; s < kNumSlots; ++s) {
    seen_[s] = false;
    slot_problem_[s].clear();
  }
  amount_overflow_ = false;
  out->transaction_id.clear();
  out->customer_id.clear();
  out->terminal_id.clear();
  out->customer_key = out->terminal_key = 0;
  out->amount = 0;
  out->timestamp = 0;
  out->currency.clear();
  out->status.clear();
  out->json.clear();

  for (auto item : obj) {
    od::field field;
    if (auto e = std::move(item).get(field)) return e;
    std::string_view key;
    if (auto e = ReadKey(field.key().raw(), &key)) return e;
    od::value& v = field.value();
    const Slot slot = FindSlot(key);
    if (slot == kUnknown) {
      if (auto e = Validate(v, depth)) return e;
      continue;
    }
    // A repeated key: the last occurrence wins, its problem included.
    seen_[slot] = true;
    slot_problem_[slot].clear();
    error_code e = simdjson::SUCCESS;
    switch (slot) {
      case kTransactionId:
        e = ParseId(v, depth, slot, &out->transaction_id);
        break;
      case kCustomerId:
        e = ParseId(v, depth, slot, &out->customer_id);
        break;
      case kTerminalId:
        e = ParseId(v, depth, slot, &out->terminal_id);
        break;
      case kVendorId:
        e = ParseId(v, depth, slot, &vendor_id_);
        break;
      case kAmount:
        e = ParseAmount(v, depth, out);
        break;
      case kTimestamp:
        e = ParseTimestamp(v, depth, out);
        break;
      case kCurrency:
        e = ParseEnumString(v, depth, slot, &out->currency);
        break;
      case kStatus:
        e = ParseEnumString(v, depth, slot, &out->status);
        break;
      case kMetadata:
        e = ParseMetadata(v, depth);
        break;
      default:
        break;
    }
    if (e) return e;
  }

  // An overflowing amount that a later duplicate replaced: nlohmann::json, hence the store's
  // readers, would refuse the text, so it is malformed JSON here too.
  if (amount_overflow_ && slot_problem_[kAmount].empty()) return kNumberOverflow;
  if (!seen_[kTransactionId] && !options_.default_transaction_id.empty()) {
    out->transaction_id.assign(options_.default_transaction_id);
    seen_[kTransactionId] = true;
  }
  for (Slot s : {kTransactionId, kCustomerId, kAmount, kTimestamp}) {
    if (!seen_[s]) slot_problem_[s] = std::string(kSlotName[s]) + " is required";
  }
  if (!seen_[kTerminalId] && !seen_[kVendorId]) {
    slot_problem_[kTerminalId] = "terminal_id is required (vendor_id is accepted instead)";
  } else if (!seen_[kTerminalId]) {
    out->terminal_id = vendor_id_;
  } else if (seen_[kVendorId] && slot_problem_[kTerminalId].empty() &&
             slot_problem_[kVendorId].empty() && out->terminal_id != vendor_id_) {
    slot_problem_[kVendorId] = "vendor_id must equal terminal_id when both are sent";
  }

  bool ok = true;
  for (int s = 0; s < kNumSlots; ++s) {
    if (slot_problem_[s].empty()) continue;
    ok = false;
    std::string field =
        index == kNoIndex ? std::string() : "transactions[" + std::to_string(index) + "].";
    field += kSlotName[s];
    AddProblem(std::move(field), std::move(slot_problem_[s]));
  }
  if (ok) {
    out->customer_key = IdKey(out->customer_id);
    out->terminal_key = IdKey(out->terminal_id);
  }
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::ParseRootObject(od::document& doc, Transaction* out) {
  if (auto e = doc.type().get(root_type_)) return e;
  if (root_type_ != od::json_type::object) return kWrongRoot;
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return e;
  if (auto e = ParseTransaction(obj, 2, kNoIndex, out)) return e;
  return CheckEnd(doc);
}

Status TransactionParser::Impl::Parse(std::string_view body, Transaction* out,
                                      std::vector<FieldProblem>* problems,
                                      const TransactionParseOptions& options) {
  options_ = options;
  problems->clear();
  problems_ = problems;
  omitted_ = 0;
  const std::string_view text = StripBom(body);
  const std::string_view object_text = Trim(text);
  if (object_text.empty()) {
    AddProblem("", "body is empty; expected a JSON object");
    return Summarise("transaction");
  }
  od::document doc;
  error_code e = parser_.iterate(Load(text)).get(doc);
  if (!e) e = ParseRootObject(doc, out);
  if (e) {
    problems->clear();
    problems->push_back(JsonProblem(body, e, "a JSON object"));
  } else if (problems->empty()) {
    out->json.assign(object_text);
  }
  return Summarise("transaction");
}

error_code TransactionParser::Impl::ParseItems(od::array& items, int depth, size_t max_items,
                                               std::vector<Transaction>* out) {
  size_t n = 0;
  for (auto item : items) {
    od::value v;
    if (auto e = std::move(item).get(v)) return e;
    if (n >= max_items) {  // already too many: only check it is JSON
      if (auto e = Validate(v, depth)) return e;
      ++n;
      continue;
    }
    if (out->size() <= n) out->emplace_back();
    Transaction* tx = &(*out)[n];
    od::json_type type;
    if (auto e = v.type().get(type)) return e;
    if (type != od::json_type::object) {
      const std::string field = "transactions[" + std::to_string(n) + "]";
      AddProblem(field, field + " must be a JSON object, not " + std::string(TypeName(type)));
      if (auto e = Validate(v, depth)) return e;
      ++n;
      continue;
    }
    if (depth > kMaxJsonDepth) return kTooDeep;
    const char* start = v.raw_json_token().data();
    od::object obj;
    if (auto e = v.get_object().get(obj)) return e;
    if (auto e = ParseTransaction(obj, depth + 1, static_cast<int64_t>(n), tx)) return e;
    // The item's text: from its '{' to the '}' before the next token.
    const char* next;
    if (auto e = v.current_location().get(next)) return e;
    while (next > start && IsJsonSpace(next[-1])) --next;
    if (next <= start || next[-1] != '}') return kBadToken;
    tx->json.assign(start, next);
    ++n;
  }
  out->resize(std::min(n, max_items));
  if (n == 0) {
    AddProblem("transactions", "transactions must hold at least one transaction");
  } else if (n > max_items) {
    problems_->insert(
        problems_->begin(),
        {"transactions", "transactions holds " + std::to_string(n) + " transactions; at most " +
                             std::to_string(max_items) + " are accepted in one batch"});
  }
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::ParseBatchRoot(od::document& doc, size_t max_items,
                                                   std::vector<Transaction>* out) {
  if (auto e = doc.type().get(root_type_)) return e;
  if (root_type_ == od::json_type::array) {
    od::array items;
    if (auto e = doc.get_array().get(items)) return e;
    if (auto e = ParseItems(items, 2, max_items, out)) return e;
    return CheckEnd(doc);
  }
  if (root_type_ != od::json_type::object) return kWrongRoot;
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return e;
  bool seen = false;
  for (auto item : obj) {
    od::field field;
    if (auto e = std::move(item).get(field)) return e;
    std::string_view key;
    if (auto e = ReadKey(field.key().raw(), &key)) return e;
    od::value& v = field.value();
    if (key != "transactions") {
      if (auto e = Validate(v, 2)) return e;
      continue;
    }
    // A repeated "transactions": the last one wins.
    seen = true;
    problems_->clear();
    omitted_ = 0;
    od::json_type type;
    if (auto e = v.type().get(type)) return e;
    if (type != od::json_type::array) {
      out->clear();
      AddProblem("transactions",
                 "transactions must be an array, not " + std::string(TypeName(type)));
      if (auto e = Validate(v, 2)) return e;
      continue;
    }
    od::array items;
    if (auto e = v.get_array().get(items)) return e;
    if (auto e = ParseItems(items, 3, max_items, out)) return e;
  }
  if (!seen) {
    out->clear();
    AddProblem("transactions", "transactions is required: {\"transactions\": [...]}");
  }
  return CheckEnd(doc);
}

Status TransactionParser::Impl::ParseBatch(std::string_view body, size_t max_items,
                                           std::vector<Transaction>* out,
                                           std::vector<FieldProblem>* problems) {
  options_ = {};
  problems->clear();
  problems_ = problems;
  omitted_ = 0;
  const std::string_view text = StripBom(body);
  if (Trim(text).empty()) {
    out->clear();
    AddProblem("", "body is empty; expected {\"transactions\": [...]}");
    return Summarise("batch");
  }
  od::document doc;
  error_code e = parser_.iterate(Load(text)).get(doc);
  if (!e) e = ParseBatchRoot(doc, max_items, out);
  if (e) {
    out->clear();
    problems->clear();
    omitted_ = 0;
    problems->push_back(
        JsonProblem(body, e, "a JSON object {\"transactions\": [...]} or an array"));
  }
  return Summarise("batch");
}

error_code TransactionParser::Impl::ValueText(od::value& v, int depth, std::string* text) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  // A scalar's token is the whole of it (a string's from quote to quote), then spaces.
  const std::string_view token = v.raw_json_token();
  if (auto e = Validate(v, depth)) return e;
  if (type != od::json_type::object && type != od::json_type::array) {
    text->assign(TrimRight(token));
    return simdjson::SUCCESS;
  }
  // A container: from its first byte to the last before the next token (',' or '}': a content
  // is always inside an object).
  const char* start = token.data();
  const char* next;
  if (auto e = v.current_location().get(next)) return e;
  while (next > start && IsJsonSpace(next[-1])) --next;
  if (next <= start) return kBadToken;
  text->assign(start, next);
  return simdjson::SUCCESS;
}

error_code TransactionParser::Impl::MessageField(std::string_view key, od::value& v, int depth,
                                                 MessageText* out, bool* content,
                                                 std::string* type_problem) {
  constexpr size_t kMaxMessageTypeBytes = 64;
  if (key == "content") {
    *content = true;
    return ValueText(v, depth, &out->content);
  }
  if (key != "message_type") return Validate(v, depth);
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  out->message_type.clear();
  type_problem->clear();
  if (type == od::json_type::string) {
    if (auto e = ReadString(v, &out->message_type)) return e;
    if (out->message_type.size() > kMaxMessageTypeBytes) {
      *type_problem = "message_type must be at most 64 bytes";
    }
    return simdjson::SUCCESS;
  }
  if (type != od::json_type::null) {
    *type_problem = "message_type must be a string, not " + std::string(TypeName(type));
  }
  return Validate(v, depth);
}

void TransactionParser::Impl::MessageProblems(const std::string& prefix, bool content,
                                              const std::string& type_problem) {
  if (!content) {
    AddProblem(prefix + "content", "content is required: the message itself, any JSON value");
  }
  if (!type_problem.empty()) AddProblem(prefix + "message_type", type_problem);
}

Status TransactionParser::Impl::ParseMessages(std::string_view body, size_t max_items,
                                              std::vector<MessageText>* out,
                                              std::vector<FieldProblem>* problems, bool* is_batch) {
  options_ = {};
  *is_batch = false;
  problems->clear();
  problems_ = problems;
  omitted_ = 0;
  out->clear();
  const std::string_view text = StripBom(body);
  constexpr std::string_view kExpected =
      "a JSON object {\"content\": ..., \"message_type\": ...} or {\"messages\": [...]}";
  if (Trim(text).empty()) {
    AddProblem("", "body is empty; expected " + std::string(kExpected));
    return Summarise("push");
  }
  auto parse = [&](od::document& doc) -> error_code {
    if (auto e = doc.type().get(root_type_)) return e;
    if (root_type_ != od::json_type::object) return kWrongRoot;
    od::object obj;
    if (auto e = doc.get_object().get(obj)) return e;
    // One pass: "messages" makes it a batch, "content" / "message_type" a single message.
    bool batch = false, single = false;
    MessageText one;
    bool one_content = false;
    std::string one_type_problem;
    for (auto item : obj) {
      od::field field;
      if (auto e = std::move(item).get(field)) return e;
      std::string_view key;
      if (auto e = ReadKey(field.key().raw(), &key)) return e;
      od::value& v = field.value();
      if (key == "messages") {
        batch = true;
        problems_->clear();
        out->clear();
        od::json_type type;
        if (auto e = v.type().get(type)) return e;
        if (type != od::json_type::array) {
          AddProblem("messages", "messages must be an array, not " + std::string(TypeName(type)));
          if (auto e = Validate(v, 2)) return e;
          continue;
        }
        od::array items;
        if (auto e = v.get_array().get(items)) return e;
        size_t n = 0;
        for (auto element : items) {
          od::value m;
          if (auto e = std::move(element).get(m)) return e;
          const std::string field_name = "messages[" + std::to_string(n) + "]";
          ++n;
          od::json_type mtype;
          if (auto e = m.type().get(mtype)) return e;
          if (n > max_items || mtype != od::json_type::object) {
            if (n <= max_items) {
              AddProblem(field_name, field_name + " must be a JSON object {\"content\": ...}, not " +
                                         std::string(TypeName(mtype)));
            }
            if (auto e = Validate(m, 3)) return e;
            continue;
          }
          od::object mobj;
          if (auto e = m.get_object().get(mobj)) return e;
          MessageText& message = out->emplace_back();
          bool content = false;
          std::string type_problem;
          for (auto mitem : mobj) {
            od::field mfield;
            if (auto e = std::move(mitem).get(mfield)) return e;
            std::string_view mkey;
            if (auto e = ReadKey(mfield.key().raw(), &mkey)) return e;
            if (auto e = MessageField(mkey, mfield.value(), 4, &message, &content, &type_problem)) return e;
          }
          MessageProblems(field_name + ".", content, type_problem);
        }
        if (n == 0) AddProblem("messages", "messages must hold at least one message");
        if (n > max_items) {
          AddProblem("messages", "messages holds " + std::to_string(n) + " messages; at most " +
                                     std::to_string(max_items) + " are accepted in one push");
        }
      } else {
        single = single || key == "content" || key == "message_type";
        if (auto e = MessageField(key, v, 2, &one, &one_content, &one_type_problem)) return e;
      }
    }
    if (auto e = CheckEnd(doc)) return e;
    *is_batch = batch;
    if (batch && single) {
      problems_->clear();
      out->clear();
      AddProblem("", "send either \"content\" (one message) or \"messages\" (a batch), not both");
    } else if (!batch) {
      MessageProblems("", one_content, one_type_problem);
      if (problems_->empty()) out->push_back(std::move(one));
    }
    return simdjson::SUCCESS;
  };
  od::document doc;
  error_code e = parser_.iterate(Load(text)).get(doc);
  if (!e) e = parse(doc);
  if (e) {
    out->clear();
    problems->clear();
    omitted_ = 0;
    problems->push_back(JsonProblem(body, e, kExpected));
  }
  if (!problems->empty()) out->clear();
  return Summarise("push");
}

}  // namespace vigil
