#pragma once
// The flags' pictures: a small, valid GIF per country code, made up from the code itself, so
// that the server can draw any flag on request and a client knows every byte it must receive
// without a copy of the server's files.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flags {

/// FNV-1a of `s`: the seed of everything drawn for a code (and of the failure plan).
inline std::uint64_t fnv1a(std::string_view s, std::uint64_t salt = 0) noexcept {
  std::uint64_t h = 14695981039346656037ull ^ salt;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // A final mix, so that codes differing in one letter differ in every bit.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

/// The GIF89a image of the flag of `cc`: 24..56 x 16..36 pixels, eight colours, stripes
/// (horizontal, vertical) or a Nordic cross, all chosen by the code's hash. Between about 300
/// bytes and 1.3 KB. The same code always gives the same bytes.
///
/// The pixels are LZW-coded without compression (the way many small encoders do it): every
/// code is 4 bits wide, and a clear code after every four pixels keeps the decoder's table
/// from ever growing to 16 entries, where the code width would change. Every GIF decoder
/// reads this; it is just not smaller than the raw pixels.
inline std::string make_flag_gif(std::string_view cc) {
  const std::uint64_t h = fnv1a(cc);
  const int width = 24 + static_cast<int>(h % 33);
  const int height = 16 + static_cast<int>((h >> 8) % 21);
  const int pattern = static_cast<int>((h >> 16) % 3);  // 0 rows, 1 columns, 2 a cross
  const int stripes = 2 + static_cast<int>((h >> 20) % 2);

  std::string out;
  out.reserve(64 + static_cast<std::size_t>(width * height) * 5 / 8 + 16);
  auto put16 = [&](int v) {
    out.push_back(static_cast<char>(v & 0xff));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
  };
  out += "GIF89a";
  put16(width);
  put16(height);
  out.push_back(static_cast<char>(0xA2));  // a global colour table of 8 entries, 3 bits each
  out.push_back(0);                        // background colour
  out.push_back(0);                        // no aspect ratio
  // The palette: eight colours from the hash (a splitmix64 sequence).
  std::uint64_t x = h;
  for (int i = 0; i < 8; ++i) {
    x += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int c = 0; c < 3; ++c) out.push_back(static_cast<char>((z >> (8 * c)) & 0xff));
  }
  // The image: one frame covering the screen, not interlaced, no local palette.
  out.push_back(0x2C);
  put16(0);
  put16(0);
  put16(width);
  put16(height);
  out.push_back(0);
  out.push_back(3);  // LZW minimum code size: 3 bits of colour, so codes start 4 bits wide

  constexpr unsigned kClear = 8, kEnd = 9;
  std::string data;  // the LZW codes, two 4-bit codes a byte, low nibble first
  bool low = true;
  auto code = [&](unsigned c) {
    if (low)
      data.push_back(static_cast<char>(c));
    else
      data.back() = static_cast<char>(static_cast<unsigned char>(data.back()) | (c << 4));
    low = !low;
  };
  const int cross_x = width / 3, cross_y = height / 2, bar = height / 6 + 1;
  int since_clear = 0;
  code(kClear);
  for (int row = 0; row < height; ++row) {
    for (int col = 0; col < width; ++col) {
      unsigned pixel = 0;
      if (pattern == 0) {
        pixel = static_cast<unsigned>(row * stripes / height);
      } else if (pattern == 1) {
        pixel = static_cast<unsigned>(col * stripes / width);
      } else {
        const bool on_cross = (col >= cross_x && col < cross_x + bar) ||
                              (row >= cross_y - bar / 2 && row < cross_y - bar / 2 + bar);
        pixel = on_cross ? 1u : 0u;
      }
      pixel = (pixel + static_cast<unsigned>(h >> 24)) % 8;  // which colours of the palette
      if (since_clear == 4) {
        code(kClear);
        since_clear = 0;
      }
      code(pixel);
      ++since_clear;
    }
  }
  code(kEnd);
  // The codes go in sub-blocks of at most 255 bytes, then an empty block ends the image.
  for (std::size_t at = 0; at < data.size(); at += 255) {
    const std::size_t n = data.size() - at < 255 ? data.size() - at : 255;
    out.push_back(static_cast<char>(n));
    out.append(data, at, n);
  }
  out.push_back(0);
  out.push_back(0x3B);  // trailer
  return out;
}

}  // namespace flags
