// UTF-8 validation: everything sluice stores (plans, identifiers, reasons,
// notes) must be valid UTF-8, because its state is JSON and text columns.
// Invalid input gets a clear error at the edge instead of an exception deep
// inside a transaction.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// The byte offset of the first byte that is not part of a well-formed UTF-8
// sequence (overlong forms, surrogates and code points above U+10FFFF are
// ill-formed), or nullopt when `s` is valid.
std::optional<size_t> FirstInvalidUtf8(std::string_view s);

// "" when `s` is valid UTF-8; otherwise a message naming `what` and where:
// "--reason is not valid UTF-8 (byte 0xff at offset 3)".
std::string Utf8Problem(std::string_view what, std::string_view s);

// `s` with every invalid byte replaced by U+FFFD, for messages and logs.
std::string SanitizeUtf8(std::string_view s);

}  // namespace sluice
