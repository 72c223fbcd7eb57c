// weave::net::http: the server side, serve_connection() and serve().
//
// A connection's fiber reads a request into its ReadBuffer and feeds it to a Beast
// request_parser (header first, then the body), calls the handler, and writes the response it
// serialised itself. The next request is read only after the response is written, so
// pipelined requests are answered in order; their bytes wait in the ReadBuffer.

#include <time.h>

#include <charconv>
#include <cstdint>
#include <memory>
#include <string>

#include "http_beast.hpp"
#include "http_internal.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/net/http.hpp"

namespace weave::net::http {

namespace bh = boost::beast::http;

namespace detail {

void append_date(std::string& out) {
  thread_local time_t cached_second = -1;
  thread_local char cached[40];
  time_t now = ::time(nullptr);
  if (now != cached_second) {
    struct tm tm;
    ::gmtime_r(&now, &tm);
    ::strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_second = now;
  }
  out += cached;
}

}  // namespace detail

namespace {

using RequestParser = bh::request_parser<bh::string_body>;

void append_number(std::string& out, std::uint64_t v, int base = 10) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v, base);
  out.append(buf, r.ptr);
}

/// How reading a request ended.
enum class ReadResult { ok, eof, timeout, error };

/// Feeds the buffered bytes to `p` and reads more until the parser is done with what it was
/// asked for (the header, or with eager(true) the message). Returns ok, eof (the stream ended
/// before a byte of this message), or error with `ec` set (a parse error, a limit, or the
/// stream ending in the middle).
ReadResult parse_more(Stream& s, detail::ReadBuffer& buf, RequestParser& p,
                      boost::system::error_code& ec) {
  for (;;) {
    bool header_phase = !p.is_header_done();
    if (!buf.empty()) {
      auto in = buf.view();
      std::size_t n = p.put(boost::asio::const_buffer(in.data(), in.size()), ec);
      buf.consume(n);
      if (!ec) {
        if (p.is_done() || (header_phase && p.is_header_done())) return ReadResult::ok;
        if (n > 0) continue;
      } else if (ec != bh::error::need_more) {
        return ReadResult::error;
      }
      ec = {};
    }
    if (buf.fill(s) == 0) {
      if (!p.got_some() && buf.empty()) return ReadResult::eof;
      p.put_eof(ec);
      if (!ec) return ReadResult::ok;  // cannot happen for a request, but harmless
      return ReadResult::error;
    }
  }
}

void append_head(std::string& out, int status, std::string_view reason, int version) {
  out += version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
  append_number(out, static_cast<std::uint64_t>(status));
  out += ' ';
  out += reason.empty() ? reason_phrase(status) : reason;
  out += "\r\n";
}

bool has_no_body(int status) noexcept {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/// Sends the queued bytes, half-closes, and reads (and drops) what the client still sends for
/// a short while, so that a response sent before closing is not destroyed by a reset (a close
/// with unread bytes in the receive buffer sends RST, which can discard the response on the
/// client's side before it reads it).
void lingering_close(Stream& s) {
  try {
    move_on_after(std::chrono::milliseconds(500), [&] {
      s.drain();
      s.shutdown_write();
      char sink[4096];
      std::size_t total = 0;
      while (total < 256 * 1024) {
        std::size_t n = s.read_some(std::span<char>(sink, sizeof sink));
        if (n == 0) break;
        total += n;
      }
    });
  } catch (const Cancelled&) {
    throw;
  } catch (const std::system_error&) {
    // The peer is gone: nothing more to do.
  }
}

/// Thrown by send() when the client took no byte of the response for send_timeout: the
/// connection is dropped (not a std::exception: nothing else catches it on the way).
struct SendStalled {};

/// drain() for a response: waits until the queued bytes are (nearly) sent, however long that
/// takes while the client keeps taking bytes, and throws SendStalled if it takes none for
/// o.send_timeout (a client that asked for a large response and stopped reading would
/// otherwise hold the connection and the unsent bytes forever).
void send(Stream& s, const ServerOptions& o) {
  for (;;) {
    const std::size_t before = s.write_buffer_size();
    if (!move_on_after(o.send_timeout, [&] { s.drain(); })) return;
    if (s.write_buffer_size() >= before) throw SendStalled{};
  }
}

/// Answers a request that could not be read (400, 408, 413, 431) and closes.
void reject(Stream& s, std::string& out, int status, const ServerOptions& o) {
  out.clear();
  append_head(out, status, {}, 11);
  if (!o.server_name.empty()) {
    out += "Server: ";
    out += o.server_name;
    out += "\r\n";
  }
  std::string_view text = reason_phrase(status);
  out += "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ";
  append_number(out, text.size() + 1);
  out += "\r\n\r\n";
  out += text;
  out += '\n';
  try {
    s.write(out);
  } catch (const std::system_error&) {
    return;
  }
  lingering_close(s);
}

void report_handler_error(const ServerOptions& o, std::exception_ptr e) {
  if (o.on_handler_error) {
    o.on_handler_error(std::move(e));
    return;
  }
  Loop::current().call_exception_handler(ErrorContext{
      "weave::net::http: the request handler threw (the client got a 500)", std::move(e), {}});
}

int status_for(const boost::system::error_code& ec) noexcept {
  if (ec == bh::error::header_limit) return 431;
  if (ec == bh::error::body_limit) return 413;
  return 400;
}

/// Writes `resp` (to a request with `version`, for `head_only` a HEAD); returns false if the
/// connection must close afterwards.
bool write_response(Stream& s, std::string& out, std::unique_ptr<char[]>& chunk_buffer,
                    Response& resp, int version, bool head_only, bool keep,
                    const ServerOptions& o) {
  constexpr std::size_t kChunk = 64 * 1024;
  const bool no_body = has_no_body(resp.status);
  const bool use_source = static_cast<bool>(resp.body_source) && !no_body;
  bool chunked = false;
  std::uint64_t source_length = 0;
  bool source_length_known = false;
  if (resp.headers.get("Connection") && detail::has_token(*resp.headers.get("Connection"), "close"))
    keep = false;
  if (use_source) {
    if (auto cl = resp.headers.get("Content-Length")) {
      auto r = std::from_chars(cl->data(), cl->data() + cl->size(), source_length);
      if (r.ec != std::errc() || r.ptr != cl->data() + cl->size())
        throw std::logic_error("http: the handler's Content-Length is not a number");
      source_length_known = true;
    } else if (version >= 11) {
      chunked = true;
    } else {
      keep = false;  // HTTP/1.0 without a length: the end of the connection ends the body
    }
  }

  out.clear();
  append_head(out, resp.status, resp.reason, version);
  bool has_date = false, has_server = false;
  for (const auto& [name, value] : resp.headers) {
    // The framing fields are ours.
    if (detail::iequals(name, "Content-Length") || detail::iequals(name, "Transfer-Encoding") ||
        detail::iequals(name, "Connection"))
      continue;
    if (detail::iequals(name, "Date")) has_date = true;
    if (detail::iequals(name, "Server")) has_server = true;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (o.date && !has_date) {
    out += "Date: ";
    detail::append_date(out);
    out += "\r\n";
  }
  if (!o.server_name.empty() && !has_server) {
    out += "Server: ";
    out += o.server_name;
    out += "\r\n";
  }
  if (!keep)
    out += "Connection: close\r\n";
  else if (version < 11)
    out += "Connection: keep-alive\r\n";
  if (use_source) {
    if (chunked)
      out += "Transfer-Encoding: chunked\r\n";
    else if (source_length_known) {
      out += "Content-Length: ";
      append_number(out, source_length);
      out += "\r\n";
    }
  } else if (!no_body || resp.status == 304) {
    if (resp.status != 304 || !resp.body.empty()) {
      out += "Content-Length: ";
      append_number(out, resp.body.size());
      out += "\r\n";
    }
  }
  out += "\r\n";

  if (head_only || no_body) {
    s.write(out);
    send(s, o);
    return keep;
  }
  if (!use_source) {
    // One write for a small response; a large body goes as it is, without a copy into `out`.
    if (resp.body.size() <= 16 * 1024) {
      out += resp.body;
      s.write(out);
    } else {
      s.write(out);
      s.write(resp.body);
    }
    send(s, o);
    return keep;
  }

  s.write(out);
  if (!chunk_buffer) chunk_buffer.reset(new char[kChunk]);
  std::uint64_t sent = 0;
  for (;;) {
    std::size_t n = resp.body_source(std::span<char>(chunk_buffer.get(), kChunk));
    if (n == 0) break;
    if (n > kChunk) throw std::logic_error("http: a BodySource returned more than its buffer");
    if (source_length_known && sent + n > source_length)
      throw std::logic_error("http: a BodySource gave more bytes than its Content-Length");
    sent += n;
    if (chunked) {
      out.clear();
      append_number(out, n, 16);
      out += "\r\n";
      s.write(out);
      s.write(std::string_view(chunk_buffer.get(), n));
      s.write("\r\n");
    } else {
      s.write(std::string_view(chunk_buffer.get(), n));
    }
    send(s, o);
  }
  if (chunked) s.write("0\r\n\r\n");
  if (source_length_known && sent != source_length)
    throw std::logic_error("http: a BodySource ended before its Content-Length");
  send(s, o);
  return keep;
}

Request to_request(RequestParser& p) {
  auto msg = p.release();
  Request req;
  req.method.assign(msg.method_string().data(), msg.method_string().size());
  req.target.assign(msg.target().data(), msg.target().size());
  req.version = static_cast<int>(msg.version());
  for (const auto& f : msg) {
    auto name = f.name_string();
    auto value = f.value();
    req.headers.add(std::string_view(name.data(), name.size()),
                    std::string_view(value.data(), value.size()));
  }
  req.body = std::move(msg.body());
  return req;
}

}  // namespace

void serve_connection(Stream& s, const Handler& handler, const ServerOptions& o) {
  Loop& loop = Loop::current();
  detail::ReadBuffer buf;
  std::string out;
  std::unique_ptr<char[]> chunk_buffer;
  TimePoint header_deadline = loop.time() + o.header_timeout;
  for (bool first = true;; first = false) {
    if (!first) {
      // Keep-alive: wait quietly for the next request's first byte.
      if (buf.empty()) {
        auto n = move_on_after(o.idle_timeout, [&] { return buf.fill(s); });
        if (!n || *n == 0) return;
      }
      header_deadline = loop.time() + o.header_timeout;
    }

    RequestParser p;
    p.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(o.max_header_bytes, UINT32_MAX)));
    p.body_limit(static_cast<std::uint64_t>(o.max_body_bytes));
    p.eager(false);
    boost::system::error_code ec;

    auto header = move_on_at(header_deadline, [&] { return parse_more(s, buf, p, ec); });
    if (!header) {
      if (p.got_some() || !buf.empty()) reject(s, out, 408, o);
      return;
    }
    if (*header == ReadResult::eof) return;
    if (*header == ReadResult::error) {
      reject(s, out, status_for(ec), o);
      return;
    }

    if (!p.is_done()) {
      // A body follows. "Expect: 100-continue" asks for a go-ahead before it is sent (the
      // parser has already refused a Content-Length over the limit with body_limit).
      const auto& h = p.get();
      if (h.version() >= 11 && buf.empty()) {
        auto expect = h[bh::field::expect];
        if (detail::iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
          s.write("HTTP/1.1 100 Continue\r\n\r\n");
          try {
            send(s, o);
          } catch (const SendStalled&) {
            s.abort();
            return;
          }
        }
      }
      p.eager(true);
      auto body = move_on_after(o.body_timeout, [&] { return parse_more(s, buf, p, ec); });
      if (!body) {
        reject(s, out, 408, o);
        return;
      }
      if (*body != ReadResult::ok) {
        reject(s, out, *body == ReadResult::error ? status_for(ec) : 400, o);
        return;
      }
    }

    Request req = to_request(p);
    const bool head_only = req.method == "HEAD";
    bool keep = req.keep_alive();
    Response resp;
    try {
      resp = handler(req);
    } catch (const Cancelled&) {
      throw;
    } catch (...) {
      report_handler_error(o, std::current_exception());
      resp = Response(500, "Internal Server Error\n");
    }
    try {
      keep = write_response(s, out, chunk_buffer, resp, req.version, head_only, keep, o);
    } catch (const Cancelled&) {
      throw;
    } catch (const std::system_error&) {
      throw;
    } catch (const SendStalled&) {
      s.abort();  // the unsent rest of the response is dropped with the connection
      return;
    } catch (...) {
      // A BodySource failed (or broke its promise) after the status line was sent: the
      // client can only learn it from the connection ending early.
      s.abort();
      report_handler_error(o, std::current_exception());
      return;
    }
    if (!keep) {
      if (!buf.empty()) {
        // Pipelined requests after a closing one are not answered: make sure the response
        // arrives before the reset that unread bytes would cause.
        lingering_close(s);
      } else {
        try {
          send(s, o);
        } catch (const SendStalled&) {
          s.abort();
          return;
        }
        s.shutdown_write();
      }
      return;
    }
  }
}

Server serve(Handler handler, std::string_view host, std::uint16_t port, ServerOptions options) {
  if (!handler) throw std::invalid_argument("http::serve: empty handler");
  struct Shared {
    Handler handler;
    ServerOptions options;
    std::size_t connections = 0;
  };
  auto shared = std::make_shared<Shared>(Shared{std::move(handler), std::move(options), 0});
  net::ServerOptions net_options = shared->options.net;
  auto server = net::start_server(
      [shared](Stream& s) {
        const ServerOptions& o = shared->options;
        if (o.max_connections != 0 && shared->connections >= o.max_connections) {
          std::string out;
          reject(s, out, 503, o);
          return;
        }
        ++shared->connections;
        struct Count {
          std::size_t& n;
          ~Count() { --n; }
        } count{shared->connections};
        serve_connection(s, shared->handler, o);
      },
      host, port, std::move(net_options));
  return Server(std::move(server));
}

}  // namespace weave::net::http
