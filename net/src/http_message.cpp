// weave::net::http: Headers, Request, Response, reason phrases and URLs.

#include <stdexcept>
#include <string>

#include "http_beast.hpp"
#include "http_internal.hpp"
#include "weave/net/http.hpp"

namespace weave::net::http {

namespace detail {

bool is_token_char(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_token_char(c)) return false;
  return true;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x |= 0x20;
    if (y >= 'A' && y <= 'Z') y |= 0x20;
    if (x != y) return false;
  }
  return true;
}

bool has_token(std::string_view list, std::string_view token) noexcept {
  // A comma-separated list ("keep-alive, Upgrade"), compared case-insensitively.
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace detail

namespace {

void check_field(std::string_view name, std::string_view value) {
  if (!detail::is_token(name))
    throw std::invalid_argument("http::Headers: invalid field name \"" + std::string(name) + "\"");
  for (unsigned char c : value)
    if (c == '\r' || c == '\n' || c == '\0')
      throw std::invalid_argument("http::Headers: field \"" + std::string(name) +
                                  "\" has a CR, LF or NUL in its value");
}

}  // namespace

// ---- Headers -------------------------------------------------------------------------------

Headers::Headers(std::initializer_list<Field> fields) {
  fields_.reserve(fields.size());
  for (const auto& f : fields) add(f.first, f.second);
}

std::optional<std::string_view> Headers::get(std::string_view name) const noexcept {
  for (const auto& f : fields_)
    if (detail::iequals(f.first, name)) return std::string_view(f.second);
  return std::nullopt;
}

std::string_view Headers::get_or(std::string_view name, std::string_view fallback) const noexcept {
  auto v = get(name);
  return v ? *v : fallback;
}

std::vector<std::string_view> Headers::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& f : fields_)
    if (detail::iequals(f.first, name)) out.emplace_back(f.second);
  return out;
}

bool Headers::contains(std::string_view name) const noexcept { return get(name).has_value(); }

void Headers::set(std::string_view name, std::string_view value) {
  check_field(name, value);
  auto it = fields_.begin();
  for (; it != fields_.end(); ++it)
    if (detail::iequals(it->first, name)) break;
  if (it == fields_.end()) {
    fields_.emplace_back(std::string(name), std::string(value));
    return;
  }
  it->second.assign(value);
  // Later fields of the same name go.
  auto out = it + 1;
  for (auto in = it + 1; in != fields_.end(); ++in)
    if (!detail::iequals(in->first, name)) *out++ = std::move(*in);
  fields_.erase(out, fields_.end());
}

void Headers::add(std::string_view name, std::string_view value) {
  check_field(name, value);
  fields_.emplace_back(std::string(name), std::string(value));
}

std::size_t Headers::erase(std::string_view name) noexcept {
  auto out = fields_.begin();
  for (auto in = fields_.begin(); in != fields_.end(); ++in)
    if (!detail::iequals(in->first, name)) {
      if (out != in) *out = std::move(*in);
      ++out;
    }
  std::size_t n = static_cast<std::size_t>(fields_.end() - out);
  fields_.erase(out, fields_.end());
  return n;
}

// ---- Request and Response -----------------------------------------------------------------------

std::string_view Request::path() const noexcept {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view Request::query() const noexcept {
  std::string_view t = target;
  auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

bool Request::keep_alive() const noexcept {
  for (const auto& [name, value] : headers) {
    if (!detail::iequals(name, "Connection")) continue;
    if (detail::has_token(value, "close")) return false;
    if (version < 11 && detail::has_token(value, "keep-alive")) return true;
  }
  return version >= 11;
}

Response::Response(int s, std::string b, std::string_view content_type)
    : status(s), body(std::move(b)) {
  if (!content_type.empty()) headers.set("Content-Type", content_type);
}

std::string_view reason_phrase(int status) noexcept {
  if (status < 100 || status > 999) return "Unknown";
  auto r = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  return std::string_view(r.data(), r.size());
}

// ---- Url
// ------------------------------------------------------------------------------------------

Url Url::parse(std::string_view url) {
  auto bad = [&](const char* why) -> std::invalid_argument {
    return std::invalid_argument("http::Url: " + std::string(why) + ": \"" + std::string(url) +
                                 "\"");
  };
  for (unsigned char c : url)
    if (c <= 0x20 || c == 0x7f) throw bad("spaces or control characters");
  auto colon = url.find("://");
  if (colon == std::string_view::npos) throw bad("not an absolute URL");
  std::string_view scheme = url.substr(0, colon);
  if (detail::iequals(scheme, "https")) throw bad("https is not supported (no TLS)");
  if (!detail::iequals(scheme, "http")) throw bad("only http:// URLs are supported");
  std::string_view rest = url.substr(colon + 3);
  auto end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) throw bad("user info is not supported");

  Url u;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) throw bad("unclosed '[' in the host");
    u.host = std::string(authority.substr(1, close - 1));
    if (u.host.empty() || u.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos)
      throw bad("invalid IPv6 address");
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw bad("junk after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) throw bad("empty port");
    }
  } else {
    auto c = authority.rfind(':');
    if (c != std::string_view::npos) {
      port_text = authority.substr(c + 1);
      authority = authority.substr(0, c);
      if (port_text.empty()) throw bad("empty port");
    }
    if (authority.empty()) throw bad("empty host");
    for (unsigned char ch : authority)
      if (!(detail::is_token_char(ch)) || ch == '%' || ch == '\'' || ch == '`' || ch == '|' ||
          ch == '^')
        throw bad("invalid character in the host");
    u.host = std::string(authority);
  }
  if (!port_text.empty()) {
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string_view::npos)
      throw bad("invalid port");
    unsigned long p = std::stoul(std::string(port_text));
    if (p == 0 || p > 65535) throw bad("port out of range");
    u.port = static_cast<std::uint16_t>(p);
  }
  tail = tail.substr(0, tail.find('#'));
  if (tail.empty())
    u.target = "/";
  else if (tail.front() == '?')
    u.target = "/" + std::string(tail);
  else
    u.target = std::string(tail);
  return u;
}

std::string Url::authority() const {
  std::string a = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != 80) a += ":" + std::to_string(port);
  return a;
}

std::string Url::str() const { return "http://" + authority() + target; }

}  // namespace weave::net::http
