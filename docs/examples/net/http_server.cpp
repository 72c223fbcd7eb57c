// http_server: a static file server on weave::net::http (one fiber per connection,
// keep-alive, pipelining), plus a one-shot client mode that fetches a URL with
// weave::net::http::Client.
//
// Usage: http_server --root DIR [--port P] [--host H]
//        http_server --get URL [--head]
//   --root DIR  serve the files under DIR (required to serve).
//   --port P    the port to listen on; 0 (the default) lets the kernel pick a free one.
//   --host H    the address to listen on (default 127.0.0.1).
//   --get URL   do not serve: GET (or with --head, HEAD) URL and print "<status> <length>"
//               and the Content-Type, then the body (for GET); exit 0 if the status is 2xx.
//
// Serving: the first line printed is "listening on <port>". GET and HEAD are answered (405
// with "Allow: GET, HEAD" otherwise); a file gets its Content-Type from a small extension table
// and a Content-Length; a directory gets its index.html (404 if it has none; a directory URL
// without its final '/' is redirected to it first). Paths are percent-decoded, then resolved
// with realpath(): whatever resolves outside DIR ("..", "%2e%2e", a symlink pointing out) gets
// 403, a missing file 404, a special file (device, FIFO) 403. Files up to 64 KiB are read
// whole; larger ones are streamed in 64 KiB pieces as the client reads them. SIGINT or
// SIGTERM stops the server: it stops accepting, ends the live connections, says how many
// requests it served, and exits with status 0.

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "weave/cancel_scope.hpp"
#include "weave/net/http.hpp"
#include "weave/net/signals.hpp"
#include "weave/run.hpp"

namespace http = weave::net::http;
using namespace std::chrono_literals;

namespace {

struct Args {
  std::string root;
  int port = 0;
  std::string host = "127.0.0.1";
  std::string get;
  bool head = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "http_server: %s\nusage: http_server --root DIR [--port P] [--host H]\n"
               "       http_server --get URL [--head]\n",
               why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--head") {
      a.head = true;
      continue;
    }
    if (i + 1 >= argc) usage("missing a value");
    if (arg == "--root") {
      a.root = argv[++i];
    } else if (arg == "--port") {
      char* end = nullptr;
      long p = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || p < 0 || p > 65535) usage("--port wants 0..65535");
      a.port = static_cast<int>(p);
    } else if (arg == "--host") {
      a.host = argv[++i];
    } else if (arg == "--get") {
      a.get = argv[++i];
    } else {
      usage("unknown argument");
    }
  }
  if (a.get.empty() && a.root.empty()) usage("--root DIR (or --get URL) is required");
  return a;
}

std::string_view content_type(std::string_view path) {
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".txt", "text/plain; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".xml", "application/xml"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"},
      {".pdf", "application/pdf"},
  };
  auto slash = path.rfind('/');
  auto dot = path.rfind('.');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    std::string_view ext = path.substr(dot);
    for (const auto& [e, type] : kTypes) {
      if (e.size() != ext.size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < e.size() && same; ++i)
        same = e[i] == (ext[i] >= 'A' && ext[i] <= 'Z' ? ext[i] | 0x20 : ext[i]);
      if (same) return type;
    }
  }
  return "application/octet-stream";
}

/// The percent-decoded path, or nothing if an escape is malformed or decodes to NUL.
std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return std::nullopt;
    out += c;
    i += 2;
  }
  return out;
}

/// An open file, closed when the last reference goes (the body source holds one).
struct File {
  int fd = -1;
  explicit File(int f) : fd(f) {}
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File() {
    if (fd >= 0) ::close(fd);
  }
};

class FileServer {
 public:
  explicit FileServer(std::string root) : root_(std::move(root)) {}

  http::Response operator()(const http::Request& req) {
    ++requests_;
    if (req.method != "GET" && req.method != "HEAD") {
      http::Response r(405, "method not allowed\n");
      r.headers.set("Allow", "GET, HEAD");
      return r;
    }
    auto path = percent_decode(req.path());
    if (!path || path->empty() || path->front() != '/') return http::Response(400, "bad path\n");

    // realpath() resolves "..", "." and every symlink: what it gives must still be under
    // the root. (The root itself was resolved the same way at the start.)
    std::string candidate = root_ + *path;
    char resolved[PATH_MAX];
    if (!::realpath(candidate.c_str(), resolved)) {
      if (errno == EACCES) return http::Response(403, "forbidden\n");
      return http::Response(404, "not found\n");
    }
    std::string real = resolved;
    if (real != root_ && real.compare(0, root_.size() + 1, root_ + "/") != 0)
      return http::Response(403, "forbidden\n");

    struct stat st;
    if (::stat(real.c_str(), &st) != 0) return http::Response(404, "not found\n");
    if (S_ISDIR(st.st_mode)) {
      if (path->back() != '/') {
        http::Response r(301, {}, {});
        r.headers.set("Location", std::string(req.path()) + "/");
        return r;
      }
      real += "/index.html";
      if (::stat(real.c_str(), &st) != 0) return http::Response(404, "not found\n");
    }
    if (!S_ISREG(st.st_mode)) return http::Response(403, "forbidden\n");

    int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return http::Response(errno == EACCES ? 403 : 404, "cannot open\n");
    auto file = std::make_shared<File>(fd);
    http::Response r(200, {}, content_type(real));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size <= 64 * 1024 && req.method == "GET") {
      r.body.resize(size);
      std::size_t got = 0;
      while (got < size) {
        ssize_t n = ::read(fd, r.body.data() + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return http::Response(500, "read error\n");
        got += static_cast<std::size_t>(n);
      }
      return r;
    }
    // A large file (or HEAD, which sends the length only): streamed. Reading a regular file does
    // not wait for the network; the connection's fiber pulls the next piece only once the previous
    // one was taken by the kernel (the server drains between pieces), so a slow client holds 64
    // KiB, not the file.
    r.headers.set("Content-Length", std::to_string(size));
    r.body_source = [file](std::span<char> buf) -> std::size_t {
      for (;;) {
        ssize_t n = ::read(file->fd, buf.data(), buf.size());
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "read");
      }
    };
    return r;
  }

  std::size_t requests() const noexcept { return requests_; }

 private:
  std::string root_;
  std::size_t requests_ = 0;
};

int fetch(const Args& args) {
  return weave::run([&] {
    http::Client client;
    http::Request req;
    req.method = args.head ? "HEAD" : "GET";
    req.target = args.get;
    http::Response r = client.request(req);
    std::printf("%d %zu %s\n", r.status, r.body.size(),
                std::string(r.headers.get_or("Content-Type", "-")).c_str());
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);
    return r.ok() ? 0 : 1;
  });
}

int serve(const Args& args) {
  char resolved[PATH_MAX];
  if (!::realpath(args.root.c_str(), resolved)) {
    std::fprintf(stderr, "http_server: --root %s: %s\n", args.root.c_str(), std::strerror(errno));
    return 1;
  }
  struct stat st;
  if (::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "http_server: --root %s is not a directory\n", args.root.c_str());
    return 1;
  }
  std::string root = resolved;
  if (root == "/") root.clear();  // so that root + "/" is "/", and every path is under it
  return weave::run([&] {
    // Taken before the port is announced: a client that reacts to "listening on" with a
    // signal finds it handled.
    weave::net::SignalSet stop({SIGINT, SIGTERM});
    auto files = std::make_shared<FileServer>(root);
    auto server = http::serve([files](const http::Request& req) { return (*files)(req); },
                              args.host, static_cast<std::uint16_t>(args.port));
    std::printf("listening on %u\n", server.port());
    std::fflush(stdout);
    int sig = stop.wait();
    server.close();
    server.close_clients();
    weave::move_on_after(5s, [&] { server.wait_closed(); });
    std::printf("%s: stopped after serving %zu requests\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                files->requests());
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  try {
    return args.get.empty() ? serve(args) : fetch(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
}
