// weave::net::Server: acceptor fibers and a handler fiber per connection.

#include "weave/net/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "internal.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/detail/intrusive_list.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/net/dns.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace weave::net {

namespace detail {

namespace {

struct Waiter : ::weave::detail::ListNode {
  explicit Waiter(::weave::detail::TaskBase* t) noexcept : task(t) {}
  ::weave::detail::TaskBase* task;
};

void wake_all(::weave::detail::IntrusiveList& list) noexcept {
  while (auto* n = list.pop_front()) {
    auto* t = static_cast<Waiter*>(n)->task;
    LoopAccess::wake(*t->loop, t);
  }
}

void wait_on(::weave::detail::IntrusiveList& list, const char* what, SourceLocation where) {
  auto* self = LoopAccess::require_fiber(what);
  LoopAccess::checkpoint(self);
  Waiter w(self);
  list.push_back(&w);
  if (!LoopAccess::park(self, where)) {
    if (w.linked()) list.erase(&w);
    LoopAccess::throw_cancelled(self);
  }
}

// The default handling of an exception that escaped a connection handler: errors that only
// mean the peer went away are dropped; the rest go to the loop's exception handler.
bool is_peer_gone(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const IncompleteReadError&) {
    return true;
  } catch (const std::system_error& err) {
    return err.code().category() == std::generic_category() &&
           (is_connection_lost(err.code().value()) || err.code().value() == EBADF);
  } catch (...) {
    return false;
  }
}

}  // namespace

struct Listener {
  weave::IoWatch watch;
  SocketAddress address;
  // A Unix socket's file, removed by close() if it is still the one bound here.
  std::string unlink_path;
  ino_t inode = 0;
};

// Shared by the Server handle, the acceptor fibers and the handler fibers (loop-affine
// reference count): a handle may go while connections are still served.
struct ServerState {
  ServerState(weave::Loop& l, ConnectionHandler h, ServerOptions o)
      : loop(&l), handler(std::move(h)), options(std::move(o)) {}

  weave::Loop* loop;
  ConnectionHandler handler;
  ServerOptions options;
  std::vector<std::unique_ptr<Listener>> listeners;
  int refs = 1;
  bool serving = true;
  std::size_t acceptors = 0;
  std::size_t connections = 0;
  std::size_t accepted = 0;
  // One node per running handler, on that handler fiber's stack.
  ::weave::detail::IntrusiveList handlers;
  ::weave::detail::IntrusiveList serve_waiters;    // serve_forever(): until close()
  ::weave::detail::IntrusiveList closed_waiters;   // wait_closed(): until everything ended
  ::weave::detail::IntrusiveList backoff_waiters;  // acceptors short of fds: a connection ended

  void unref() noexcept {
    if (--refs == 0) delete this;
  }

  bool finished() const noexcept { return !serving && acceptors == 0 && connections == 0; }
  void check_finished() noexcept {
    if (finished()) wake_all(closed_waiters);
  }

  void close() noexcept {
    if (!serving) return;
    serving = false;
    for (auto& l : listeners) {
      l->watch.close();  // the acceptor waiting on it wakes with EBADF and ends
      if (!l->unlink_path.empty()) {
        struct stat st;
        if (::stat(l->unlink_path.c_str(), &st) == 0 && st.st_ino == l->inode)
          ::unlink(l->unlink_path.c_str());
      }
    }
    wake_all(serve_waiters);
    wake_all(backoff_waiters);
    check_finished();
  }

  void report_handler_error(std::exception_ptr e) noexcept {
    try {
      if (options.on_handler_error) {
        options.on_handler_error(e);
        return;
      }
      if (is_peer_gone(e)) return;
    } catch (...) {
      e = std::current_exception();
    }
    loop->call_exception_handler(
        {"weave::net::Server: exception in a connection handler", e, current_task().name()});
  }

  void run_handler(Stream& stream) {
    Waiter node(LoopAccess::current_task());
    handlers.push_back(&node);
    struct Done {
      ServerState* s;
      Waiter* node;
      Stream* stream;
      ~Done() {
        if (node->linked()) s->handlers.erase(node);
        stream->close();
        --s->connections;
        wake_all(s->backoff_waiters);  // an fd was freed
        s->check_finished();
        s->unref();
      }
    } done{this, &node, &stream};
    try {
      handler(stream);
    } catch (const weave::Cancelled&) {
      throw;
    } catch (...) {
      report_handler_error(std::current_exception());
    }
  }

  void start_handler(UniqueFd fd, bool tcp) {
    if (tcp && options.stream.nodelay) set_nodelay(fd.get());
    Stream s = StreamAccess::adopt_socket(std::move(fd), options.stream, *loop);
    ++refs;
    ++connections;
    ++accepted;
    try {
      loop->spawn(SpawnOptions{{}, options.handler_stack_size, false},
                  [this, st = std::move(s)]() mutable { run_handler(st); });
    } catch (...) {
      --connections;
      --refs;
      throw;
    }
  }

  void report_shortage(const Listener& l, int err, std::chrono::milliseconds pause) noexcept {
    try {
      loop->call_exception_handler(
          {"weave::net::Server: accept() failed on " + l.address.to_string() + ": " +
               std::system_category().message(err) + " (" + ::strerrorname_np(err) +
               "); not accepting for up to " + std::to_string(pause.count()) +
               " ms at a time until fds are freed",
           std::make_exception_ptr(
               std::system_error(err, std::generic_category(), "weave::net::Server: accept")),
           {}});
    } catch (...) {
    }
  }

  void run_acceptor(Listener& l) {
    struct Done {
      ServerState* s;
      ~Done() {
        --s->acceptors;
        s->check_finished();
        s->unref();
      }
    } done{this};
    const bool tcp = l.address.family() == AF_INET || l.address.family() == AF_INET6;
    auto backoff = options.accept_backoff;
    bool short_of_fds = false;
    int batch = 0;
    while (serving) {
      UniqueFd fd;
      int err = 0;
      switch (accept_one(l.watch.fd(), fd, nullptr, &err)) {
        case AcceptStatus::accepted:
          backoff = options.accept_backoff;
          short_of_fds = false;
          try {
            start_handler(std::move(fd), tcp);
          } catch (const std::exception&) {
            // No memory for the fiber, or epoll refused the fd: this connection is dropped
            // (its fd closes), the server goes on.
            report_handler_error(std::current_exception());
          }
          // A burst of connections must not starve the fibers already serving.
          if (++batch == 64) {
            batch = 0;
            this_fiber::yield();
          }
          break;
        case AcceptStatus::would_block:
          batch = 0;
          l.watch.clear_readable();
          try {
            l.watch.wait_readable();
          } catch (const std::system_error&) {
            return;  // close() closed the listener
          }
          break;
        case AcceptStatus::transient_error:
          break;
        case AcceptStatus::out_of_fds:
          // Out of fds: the pending connection stays in the backlog and the listener stays
          // readable, so retrying at once would spin. Pause until one of our connections
          // closes (an fd is free) or the backoff passes, doubling it while the shortage lasts.
          if (!short_of_fds) report_shortage(l, err, options.max_accept_backoff);
          short_of_fds = true;
          batch = 0;
          move_on_after(backoff, [&] {
            wait_on(backoff_waiters, "weave::net::Server (accept backoff)",
                    SourceLocation::current());
          });
          backoff = std::min(backoff * 2, options.max_accept_backoff);
          break;
      }
    }
  }

  void start_acceptor(Listener& l) {
    ++refs;
    ++acceptors;
    try {
      loop->spawn(SpawnOptions{"weave::net::Server acceptor " + l.address.to_string(), 0, false},
                  [this, &l] { run_acceptor(l); });
    } catch (...) {
      --acceptors;
      --refs;
      throw;
    }
  }
};

}  // namespace detail

namespace {

// Binds a listening socket; a stale Unix socket file is removed first.
std::unique_ptr<detail::Listener> make_listener(const SocketAddress& address,
                                                const ListenOptions& options, Loop& loop) {
  auto l = std::make_unique<detail::Listener>();
  std::string path;
  if (address.family() == AF_UNIX && !address.is_abstract()) {
    path = address.host();
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  }
  UniqueFd fd = listen_socket(address, options);
  l->address = SocketAddress::local_of(fd.get());
  if (!path.empty()) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
      l->unlink_path = path;
      l->inode = st.st_ino;
    }
  }
  l->watch = weave::IoWatch(fd.get(), loop);
  fd.release();
  return l;
}

}  // namespace

Server start_server(ConnectionHandler handler, const std::vector<SocketAddress>& addresses,
                    ServerOptions options) {
  if (!handler) throw std::invalid_argument("weave::net::start_server: empty handler");
  if (addresses.empty()) throw std::invalid_argument("weave::net::start_server: no address");
  Loop& loop = Loop::current();
  auto* s = new detail::ServerState(loop, std::move(handler), std::move(options));
  Server server(s);  // closes and releases everything if a bind fails below
  std::uint16_t chosen_port = 0;
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    SocketAddress a = addresses[i];
    // Port 0 on several addresses (every interface, IPv4 and IPv6): all on the port the
    // kernel chose for the first.
    if (a.port() == 0 && chosen_port != 0) a = a.with_port(chosen_port);
    try {
      s->listeners.push_back(make_listener(a, s->options.listen, loop));
    } catch (const std::system_error& e) {
      // The IPv6 wildcard on a host without IPv6 is not an error when IPv4 is served.
      bool no_v6 = a.family() == AF_INET6 && i > 0 &&
                   (e.code().value() == EAFNOSUPPORT || e.code().value() == EADDRNOTAVAIL);
      if (!no_v6) throw;
      continue;
    }
    if (chosen_port == 0) chosen_port = s->listeners.back()->address.port();
  }
  for (auto& l : s->listeners) s->start_acceptor(*l);
  return server;
}

std::vector<SocketAddress> server_addresses(std::string_view host, std::uint16_t port) {
  if (host.empty()) {
    SocketAddress v6;
    SocketAddress::try_parse("::", port, v6);
    return {SocketAddress::ipv4_any(port), v6};
  }
  ResolveOptions o;
  o.flags = AI_PASSIVE;
  return resolve(host, port, o);
}

Server& Server::operator=(Server&& other) noexcept {
  if (this != &other) {
    if (state_) {
      state_->close();
      state_->unref();
    }
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

Server::~Server() {
  if (state_) {
    state_->close();
    state_->unref();
  }
}

std::uint16_t Server::port() const {
  if (!state_ || state_->listeners.empty())
    throw std::logic_error("weave::net::Server::port: the server has no listening socket");
  return state_->listeners.front()->address.port();
}

std::vector<SocketAddress> Server::addresses() const {
  std::vector<SocketAddress> out;
  if (state_)
    for (auto& l : state_->listeners) out.push_back(l->address);
  return out;
}

bool Server::is_serving() const noexcept { return state_ && state_->serving; }
std::size_t Server::connection_count() const noexcept { return state_ ? state_->connections : 0; }
std::size_t Server::accepted_count() const noexcept { return state_ ? state_->accepted : 0; }

void Server::serve_forever(SourceLocation where) {
  if (!state_) throw std::logic_error("weave::net::Server::serve_forever on an empty Server");
  detail::ServerState* s = state_;
  ++s->refs;
  struct Unref {
    detail::ServerState* s;
    ~Unref() { s->unref(); }
  } unref{s};
  try {
    while (s->serving)
      detail::wait_on(s->serve_waiters, "weave::net::Server::serve_forever", where);
  } catch (const weave::Cancelled&) {
    s->close();
    throw;
  }
}

void Server::close() noexcept {
  if (state_) state_->close();
}

void Server::close_clients() noexcept {
  if (!state_) return;
  state_->handlers.for_each([](::weave::detail::ListNode* n) {
    AnyTask(static_cast<detail::Waiter*>(n)->task).cancel();
  });
}

void Server::wait_closed(SourceLocation where) {
  if (!state_) throw std::logic_error("weave::net::Server::wait_closed on an empty Server");
  detail::ServerState* s = state_;
  ++s->refs;
  struct Unref {
    detail::ServerState* s;
    ~Unref() { s->unref(); }
  } unref{s};
  while (!s->finished())
    detail::wait_on(s->closed_waiters, "weave::net::Server::wait_closed", where);
}

}  // namespace weave::net
