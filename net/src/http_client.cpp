// weave::net::http: the client and its connection pool.
//
// A request takes a connection out of the pool (or opens one), writes the request it
// serialised itself, feeds the response to a Beast response_parser, and puts the connection
// back only when the response was read whole, both sides allow keep-alive and no stray byte
// follows it. Any exception (weave::Cancelled included) drops the connection instead: a pool
// never holds a half-read connection.

#include <sys/socket.h>

#include <cerrno>
#include <deque>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "http_beast.hpp"
#include "http_internal.hpp"
#include "internal.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/net/http.hpp"

namespace weave::net::http {

namespace bh = boost::beast::http;

namespace detail {

/// A connection with its unparsed bytes.
struct Connection {
  Stream stream;
  ReadBuffer buffer;
  TimePoint idle_since{};
};

struct ClientState {
  ClientOptions options;
  /// Idle connections per "host:port", oldest first (reuse takes the newest: the one least
  /// likely to have been closed by the server's idle timeout).
  std::unordered_map<std::string, std::deque<Connection>> idle;
  std::size_t opened = 0;

  /// Drops expired idle connections everywhere.
  void prune(TimePoint now) {
    for (auto it = idle.begin(); it != idle.end();) {
      auto& q = it->second;
      while (!q.empty() && now - q.front().idle_since > options.idle_timeout) {
        q.front().stream.abort();
        q.pop_front();
      }
      it = q.empty() ? idle.erase(it) : std::next(it);
    }
  }
};

}  // namespace detail

namespace {

using ResponseParser = bh::response_parser<bh::string_body>;

/// Thrown inside a request attempt when a reused connection turns out to be closed before any
/// byte of the response arrived: the one case that may be retried.
struct StaleConnection {
  std::exception_ptr error;
};

bool is_idempotent(std::string_view m) noexcept {
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "TRACE";
}

/// True if the idle connection `c` can still be used: no end of stream, error or stray bytes
/// waiting on it.
bool looks_alive(detail::Connection& c) {
  if (!c.stream.valid() || c.stream.is_closing() || c.stream.buffered() != 0 || !c.buffer.empty())
    return false;
  char byte;
  ssize_t r = ::recv(c.stream.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::string pool_key(const Url& u) { return u.host + ":" + std::to_string(u.port); }

std::string serialise(const Request& req, const Url& url, const ClientOptions& o) {
  std::string out;
  out.reserve(256 + req.body.size());
  out += req.method;
  out += ' ';
  out += url.target;
  out += " HTTP/1.1\r\n";
  if (!req.headers.contains("Host")) {
    out += "Host: ";
    out += url.authority();
    out += "\r\n";
  }
  if (!o.user_agent.empty() && !req.headers.contains("User-Agent")) {
    out += "User-Agent: ";
    out += o.user_agent;
    out += "\r\n";
  }
  for (const auto& [name, value] : req.headers) {
    if (detail::iequals(name, "Content-Length") || detail::iequals(name, "Transfer-Encoding"))
      continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    out += "Content-Length: ";
    out += std::to_string(req.body.size());
    out += "\r\n";
  }
  out += "\r\n";
  out += req.body;
  return out;
}

Response to_response(ResponseParser& p) {
  auto msg = p.release();
  Response r;
  r.status = static_cast<int>(msg.result_int());
  r.reason.assign(msg.reason().data(), msg.reason().size());
  r.version = static_cast<int>(msg.version());
  for (const auto& f : msg) {
    auto name = f.name_string();
    auto value = f.value();
    r.headers.add(std::string_view(name.data(), name.size()),
                  std::string_view(value.data(), value.size()));
  }
  r.body = std::move(msg.body());
  return r;
}

[[noreturn]] void throw_parse_error(const boost::system::error_code& ec, const Url& url) {
  std::string where = " (from " + url.authority() + ")";
  if (ec == bh::error::header_limit)
    throw LimitError("http: the response header is larger than max_header_bytes" + where);
  if (ec == bh::error::body_limit)
    throw LimitError("http: the response body is larger than max_body_bytes" + where);
  if (ec == bh::error::partial_message || ec == bh::error::short_read)
    throw ProtocolError("http: the connection closed in the middle of the response" + where);
  throw ProtocolError("http: malformed response" + where + ": " + ec.message());
}

/// Reads one final response (skipping 1xx ones) from `c`. `reused` turns an end of stream or
/// a reset before the first byte into StaleConnection.
Response read_response(detail::Connection& c, const Request& req, const Url& url,
                       const ClientOptions& o, bool reused, bool& keep) {
  bool got_any = false;
  for (;;) {
    ResponseParser p;
    p.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(o.max_header_bytes, UINT32_MAX)));
    p.body_limit(static_cast<std::uint64_t>(o.max_body_bytes));
    p.eager(true);
    if (req.method == "HEAD") p.skip(true);
    boost::system::error_code ec;
    while (!p.is_done()) {
      if (!c.buffer.empty()) {
        auto in = c.buffer.view();
        std::size_t n = p.put(boost::asio::const_buffer(in.data(), in.size()), ec);
        c.buffer.consume(n);
        if (!ec) continue;
        if (ec != bh::error::need_more) throw_parse_error(ec, url);
        ec = {};
      }
      std::size_t n;
      try {
        n = c.buffer.fill(c.stream);
      } catch (const std::system_error& e) {
        if (reused && !got_any && net::detail::is_connection_lost(e.code().value()))
          throw StaleConnection{std::current_exception()};
        throw;
      }
      if (n == 0) {
        if (!got_any && c.buffer.empty()) {
          if (reused) throw StaleConnection{};
          throw ProtocolError("http: " + url.authority() +
                              " closed the connection without a response");
        }
        p.put_eof(ec);
        if (ec) throw_parse_error(ec, url);
        break;
      }
      got_any = true;
    }
    int status = static_cast<int>(p.get().result_int());
    if (status >= 100 && status < 200 && status != 101) continue;  // 100 Continue and the like
    keep = p.keep_alive() && !p.need_eof();
    return to_response(p);
  }
}

/// After sending failed because the peer closed: the response it may have sent before closing,
/// or nothing (the send's error then stands).
std::optional<Response> read_early_response(detail::Connection& c, const Request& req,
                                            const Url& url, const ClientOptions& o) {
  try {
    bool keep = false;
    return read_response(c, req, url, o, false, keep);
  } catch (const Cancelled&) {
    throw;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Url resolve_location(const Url& base, std::string_view location) {
  if (location.size() >= 2 && location.substr(0, 2) == "//")
    return Url::parse("http:" + std::string(location));
  if (location.find("://") != std::string_view::npos) return Url::parse(location);
  Url u = base;
  if (!location.empty() && location.front() == '/') {
    u.target = std::string(location);
  } else {
    std::string_view path = std::string_view(base.target).substr(0, base.target.find('?'));
    u.target = std::string(path.substr(0, path.rfind('/') + 1)) + std::string(location);
  }
  return Url::parse(u.str());  // validates what the server sent
}

bool is_redirect(int status) noexcept {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

Client::Client(ClientOptions options)
    : state_(new detail::ClientState{std::move(options), {}, 0}) {}

Client::Client(Client&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    delete state_;
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

Client::~Client() { delete state_; }

Response Client::get(std::string_view url, SourceLocation where) {
  Request r;
  r.method = "GET";
  r.target = std::string(url);
  return request(std::move(r), where);
}

Response Client::post(std::string_view url, std::string body, std::string_view content_type,
                      SourceLocation where) {
  Request r;
  r.method = "POST";
  r.target = std::string(url);
  r.body = std::move(body);
  if (!content_type.empty()) r.headers.set("Content-Type", content_type);
  return request(std::move(r), where);
}

Response Client::request(Request req, SourceLocation where) {
  if (!state_) throw std::logic_error("http::Client: used after a move");
  if (!detail::is_token(req.method))
    throw std::invalid_argument("http::Client: invalid method \"" + req.method + "\"");
  auto& st = *state_;
  const ClientOptions& o = st.options;
  Url url = Url::parse(req.target);
  for (int redirects = 0;; ++redirects) {
    const std::string key = pool_key(url);
    const std::string wire = serialise(req, url, o);
    const bool want_close =
        req.headers.get("Connection") && detail::has_token(*req.headers.get("Connection"), "close");
    Response resp;
    for (int attempt = 0;; ++attempt) {
      Loop& loop = Loop::current();
      detail::Connection c;
      bool reused = false;
      st.prune(loop.time());
      if (auto it = st.idle.find(key); it != st.idle.end()) {
        auto& q = it->second;
        while (!q.empty() && !reused) {
          c = std::move(q.back());
          q.pop_back();
          if (looks_alive(c))
            reused = true;
          else
            c.stream.abort();
        }
        if (q.empty()) st.idle.erase(it);
      }
      if (!reused) {
        c.stream = open_connection(url.host, url.port, o.stream, where);
        ++st.opened;
      }
      // From here on any exception drops `c` (its destructor closes the stream): only a
      // response read whole puts a connection back.
      struct Abort {
        detail::Connection& c;
        bool armed = true;
        ~Abort() {
          if (armed) c.stream.abort();
        }
      } abort_guard{c};
      bool keep = false;
      try {
        bool sent = false;
        try {
          c.stream.write(wire);
          c.stream.drain(where);
          sent = true;
        } catch (const std::system_error& e) {
          if (!net::detail::is_connection_lost(e.code().value())) throw;
          // The server may have answered before reading the whole body (a 413 for a body
          // over its limit) and closed: its answer is then waiting to be read. The connection
          // is not pooled (`keep` stays false).
          if (auto early = read_early_response(c, req, url, o)) {
            resp = std::move(*early);
          } else {
            if (reused) throw StaleConnection{std::current_exception()};
            throw;
          }
        }
        if (sent) resp = read_response(c, req, url, o, reused, keep);
      } catch (const StaleConnection& stale) {
        if (attempt == 0 && is_idempotent(req.method)) continue;  // once, on a fresh connection
        if (stale.error) std::rethrow_exception(stale.error);
        throw ProtocolError("http: " + url.authority() +
                            " closed the connection without a response");
      }
      if (keep && !want_close && c.buffer.empty() && c.stream.buffered() == 0) {
        abort_guard.armed = false;
        c.idle_since = loop.time();
        auto& q = st.idle[key];
        q.push_back(std::move(c));
        while (q.size() > o.max_idle_per_host) {
          q.front().stream.abort();
          q.pop_front();
        }
        if (q.empty()) st.idle.erase(key);
      }
      break;
    }

    if (o.max_redirects <= 0 || !is_redirect(resp.status)) return resp;
    auto location = resp.headers.get("Location");
    if (!location) return resp;
    if (redirects >= o.max_redirects)
      throw TooManyRedirects("http: more than " + std::to_string(o.max_redirects) +
                             " redirects, the last one from " + url.str());
    Url next = resolve_location(url, *location);
    if (next.authority() != url.authority()) req.headers.erase("Host");
    url = std::move(next);
    if (resp.status == 303 ||
        ((resp.status == 301 || resp.status == 302) && req.method == "POST")) {
      if (req.method != "HEAD") req.method = "GET";
      req.body.clear();
      req.headers.erase("Content-Type");
    }
  }
}

void Client::close_idle() noexcept {
  if (!state_) return;
  for (auto& [key, q] : state_->idle)
    for (auto& c : q) c.stream.abort();
  state_->idle.clear();
}

std::size_t Client::idle_count() const noexcept {
  if (!state_) return 0;
  if (auto* loop = Loop::current_or_null()) state_->prune(loop->time());
  std::size_t n = 0;
  for (const auto& [key, q] : state_->idle) n += q.size();
  return n;
}

std::size_t Client::connections_opened() const noexcept { return state_ ? state_->opened : 0; }

const ClientOptions& Client::options() const noexcept {
  static const ClientOptions defaults;
  return state_ ? state_->options : defaults;
}

Response get(std::string_view url, ClientOptions options, SourceLocation where) {
  options.max_idle_per_host = 0;
  Client c(std::move(options));
  return c.get(url, where);
}

}  // namespace weave::net::http
