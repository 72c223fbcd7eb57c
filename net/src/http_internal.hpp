#pragma once
// Internals shared by the HTTP sources (http_message.cpp, http_server.cpp, http_client.cpp).

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "weave/net/stream.hpp"

namespace weave::net::http::detail {

/// True for the characters of an RFC 9110 token (a method, a field name).
bool is_token_char(unsigned char c) noexcept;
bool is_token(std::string_view s) noexcept;
/// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b) noexcept;
/// True if the comma-separated `list` holds `token` (case-insensitively).
bool has_token(std::string_view list, std::string_view token) noexcept;

/// The bytes read from a connection and not yet parsed: Beast's parser needs a whole header in
/// one contiguous piece, and the bytes after a message belong to the next one (pipelining).
/// One per connection; it grows to the largest header seen (bounded by the header limit plus
/// one read) and is reused for every message, so parsing does not allocate per read.
class ReadBuffer {
 public:
  std::string_view view() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t size() const noexcept { return end_ - begin_; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// One read from `stream` appended to the unparsed bytes; returns how many came (0 at the
  /// end of the stream). A checkpoint: a cancelled fill() loses nothing.
  std::size_t fill(Stream& stream) {
    constexpr std::size_t kMinRead = 16 * 1024;
    if (capacity_ - end_ < kMinRead) {
      if (begin_ > 0) {
        // Move the unparsed tail to the front before growing.
        std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (capacity_ - end_ < kMinRead) {
        // Not zero-filled (unlike std::string::resize): the pages of a buffer that a small
        // request never reaches stay untouched, which is about half of the resident memory
        // of an idle keep-alive connection.
        std::size_t grown = std::max(capacity_ * 2, end_ + kMinRead);
        auto bigger = std::make_unique_for_overwrite<char[]>(grown);
        if (end_ > 0) std::memcpy(bigger.get(), data_.get(), end_);
        data_ = std::move(bigger);
        capacity_ = grown;
      }
    }
    std::size_t n = stream.read_some(std::span<char>(data_.get() + end_, capacity_ - end_));
    end_ += n;
    return n;
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

/// Appends the current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), formatted
/// once per second per thread.
void append_date(std::string& out);

}  // namespace weave::net::http::detail
