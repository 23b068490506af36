// Small pieces of HTTP that routes need and the server leaves to them: the server hands a handler
// the path as sent and the headers as sent (http_server.h), and a router decides what they mean.
// Pure functions: thread-safe, no allocation beyond the returned string.
#ifndef VIGIL_SERVE_HTTP_UTIL_H_
#define VIGIL_SERVE_HTTP_UTIL_H_

#include <optional>
#include <string>
#include <string_view>

namespace vigil {

// Percent-decodes one path segment (RFC 3986 §2.1): "%41" and "%4a"/"%4A" become the byte they
// name, everything else is copied as is. '+' stays '+' (it means a space only in HTML form
// bodies, not in paths). The caller splits the path on '/' before decoding, so "%2F" yields a
// '/' inside the segment rather than a new segment.
// Returns nullopt, so that the route answers 400 rather than look up a mangled id:
// - for a malformed escape: '%' not followed by two hex digits ("%", "%4", "%zz");
// - for a NUL byte in the result (decoded from "%00" or sent raw), which C APIs would truncate at;
// - for a result that is not valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
//   above U+10FFFF), such as "%FF" or "%C0%AF".
std::optional<std::string> PercentDecode(std::string_view segment);

// Whether a Content-Type header value names the media type application/json (RFC 9110 §8.3.1):
// type and subtype compared case-insensitively, surrounded by optional whitespace and followed by
// optional parameters, which are not inspected (RFC 8259 defines none; a charset is ignored, the
// body is read as UTF-8 anyway). True for "application/json", "Application/JSON",
// "application/json; charset=utf-8" and "application/json ;charset=UTF-8"; false for
// "application/jsonp", "application/json-seq", "text/json", "application/*" and "".
bool IsJsonContentType(std::string_view header_value);

// The percent-decoded value of parameter `name` in a query string ("a=1&b=2"); "" when absent
// or not decodable.
std::string QueryParam(std::string_view query, std::string_view name);

}  // namespace vigil

#endif  // VIGIL_SERVE_HTTP_UTIL_H_
