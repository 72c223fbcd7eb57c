// The Protocol API: socket transports in the reactor's callback mode, the callback server and
// create_connection().

#include "weave/net/protocol.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "internal.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/event.hpp"
#include "weave/net/dns.hpp"
#include "weave/net/server.hpp"

namespace weave::net {
namespace detail {

namespace {

// One recv() asks for this much. The buffer is shared by every transport of the thread:
// data_received() gets a view of it, so a connection holds no read buffer of its own.
constexpr std::size_t kReadSize = 64 * 1024;

char* read_buffer() {
  thread_local std::unique_ptr<char[]> buf;
  if (!buf) buf.reset(new char[kReadSize]);
  return buf.get();
}

std::exception_ptr errno_error(int e, const char* what) {
  return std::make_exception_ptr(std::system_error(e, std::generic_category(), what));
}

const char* errno_name(int e) noexcept {
  switch (e) {
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENOBUFS:
      return "ENOBUFS";
    case ENOMEM:
      return "ENOMEM";
    default:
      return "errno";
  }
}

bool is_tcp(int family) noexcept { return family == AF_INET || family == AF_INET6; }

}  // namespace

struct ProtocolServerState {
  Loop* loop;
  ProtocolFactory factory;
  ProtocolServerOptions options;
  std::vector<IoWatch> listeners;
  std::vector<SocketAddress> addresses;
  weave::detail::IntrusiveList connections;  // live transports (through server_node_)
  std::size_t pending_lost = 0;              // transports whose connection_lost has not run
  std::size_t accepted = 0;
  int refs = 1;  // the handle, plus one per transport not yet done
  bool serving = true;
  bool accepting = true;  // false while backing off after EMFILE
  bool backoff_reported = false;
  std::chrono::milliseconds backoff{0};
  Handle backoff_timer;
  Event closed;    // set by close()
  Event all_done;  // set when closed and pending_lost == 0
  explicit ProtocolServerState(Loop& l) : loop(&l) {}

  void unref() noexcept {
    if (--refs == 0) delete this;
  }

  static Transport& transport_of(weave::detail::ListNode* n) noexcept;

  void check_done() noexcept {
    if (!serving && pending_lost == 0) all_done.set();
  }

  void close() noexcept {
    if (!serving) return;
    serving = false;
    backoff_timer.cancel();
    for (IoWatch& w : listeners) w.close();
    closed.set();
    check_done();
  }

  void pause_accepting() {
    accepting = false;
    for (IoWatch& w : listeners) w.on_readable({});
  }

  void resume_accepting() {
    if (!serving || accepting) return;
    accepting = true;
    backoff_timer.cancel();
    for (std::size_t i = 0; i < listeners.size(); ++i)
      listeners[i].on_readable([this, i] { on_accept(i); });
  }

  // A connection ended: a slot may have freed an fd, so a server that ran out tries again now
  // rather than when its timer says.
  void connection_finished() {
    if (!accepting && serving) {
      backoff = std::chrono::milliseconds(0);
      resume_accepting();
    }
  }

  void on_accept(std::size_t index);
  void start_connection(UniqueFd fd, const SocketAddress& peer);
};

struct TransportAccess {
  static TransportPtr make(Loop& loop, UniqueFd fd, std::unique_ptr<Protocol> protocol) {
    auto t =
        std::make_shared<Transport>(Transport::Token{}, loop, std::move(fd), std::move(protocol));
    t->self_ = t;
    return t;
  }
  static void attach(Transport& t, ProtocolServerState* server) {
    t.server_ = server;
    ++server->refs;
    ++server->pending_lost;
    server->connections.push_back(&t.server_node_);
  }
  static void set_peer(Transport& t, const SocketAddress& peer) { t.peername_ = peer; }
  static void set_limits(Transport& t, std::size_t high, std::size_t low) {
    t.high_water_ = high;
    t.low_water_ = low;
  }
  static void start(Transport& t) { t.start(); }
  static void fatal(Transport& t, std::exception_ptr e, const char* what) { t.fatal(e, what); }
};

Transport& ProtocolServerState::transport_of(weave::detail::ListNode* n) noexcept {
  return *static_cast<Transport::ServerNode*>(n)->owner;
}

void ProtocolServerState::on_accept(std::size_t index) {
  // Accept a bounded batch per turn, so a flood of connections cannot starve the rest of
  // the loop; the listener is level-triggered, so what is left comes back on the next turn.
  for (int i = 0; i < 64 && serving && accepting; ++i) {
    UniqueFd fd;
    SocketAddress peer;
    int error = 0;
    AcceptStatus status = accept_one(listeners[index].fd(), fd, &peer, &error);
    switch (status) {
      case AcceptStatus::accepted:
        backoff = std::chrono::milliseconds(0);
        backoff_reported = false;
        start_connection(std::move(fd), peer);
        break;
      case AcceptStatus::would_block:
        return;
      case AcceptStatus::transient_error:
        continue;
      case AcceptStatus::out_of_fds: {
        // Stop listening for readability (the pending connection would report it on every
        // turn: a busy loop) until a timer, or until one of our connections closes.
        if (!backoff_reported) {
          // Reported as text only: with no fd to spare, the less this path does the better.
          backoff_reported = true;
          loop->call_exception_handler(
              {std::string("weave::net::ProtocolServer: accept() failed: ") + std::strerror(error) +
                   " (" + errno_name(error) +
                   "); not accepting until a connection closes or a back-off timer fires",
               nullptr,
               {}});
        }
        backoff = backoff.count() == 0 ? options.accept_backoff
                                       : std::min(backoff * 2, options.max_accept_backoff);
        pause_accepting();
        backoff_timer = loop->call_later(backoff, [this] { resume_accepting(); });
        return;
      }
    }
  }
}

void ProtocolServerState::start_connection(UniqueFd fd, const SocketAddress& peer) {
  ++accepted;
  if (options.nodelay && is_tcp(peer.family())) {
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  std::unique_ptr<Protocol> protocol;
  try {
    protocol = factory();
    if (!protocol) throw std::logic_error("weave::net: the protocol factory returned null");
  } catch (...) {
    loop->call_exception_handler(
        {"weave::net::ProtocolServer: the protocol factory failed; connection closed",
         std::current_exception(),
         {}});
    return;  // `fd` closes
  }
  TransportPtr t;
  try {
    t = TransportAccess::make(*loop, std::move(fd), std::move(protocol));
  } catch (...) {
    loop->call_exception_handler(
        {"weave::net::ProtocolServer: cannot register a connection; closed",
         std::current_exception(),
         {}});
    return;
  }
  TransportAccess::set_peer(*t, peer);
  TransportAccess::set_limits(*t, options.high_water, options.low_water);
  TransportAccess::attach(*t, this);
  TransportAccess::start(*t);
}

}  // namespace detail

// ---- Transport --------------------------------------------------------------------------------

Transport::Transport(Token, Loop& loop, UniqueFd fd, std::unique_ptr<Protocol> protocol)
    : loop_(&loop), protocol_(std::move(protocol)) {
  server_node_.owner = this;
  watch_ = IoWatch(fd.get(), loop);
  fd_ = fd.release();  // the watch owns it from here on
  try {
    sockname_ = SocketAddress::local_of(watch_.fd());
  } catch (const std::system_error&) {
    // A socket without a name (an unbound socketpair end): leave it empty.
  }
}

Transport::~Transport() {
  // Normally the connection ended before; a transport that was never started (its
  // connection_made threw in create_connection) closes here.
  watch_.close();
}

void Transport::call_protocol(void (*fn)(Transport&), const char* what) {
  try {
    fn(*this);
  } catch (...) {
    fatal(std::current_exception(), what);
  }
}

void Transport::start() {
  call_protocol([](Transport& t) { t.protocol_->connection_made(t); }, "Protocol::connection_made");
  if (closing_) return;  // connection_made closed it, or failed
  if (!read_paused_) {
    reading_ = true;
    watch_.on_readable([this] { on_readable(); });
  }
}

void Transport::on_readable() {
  if (!reading_) return;  // paused or closed by an earlier callback of this turn
  char* buf = detail::read_buffer();
  ssize_t n = ::recv(fd_, buf, detail::kReadSize, 0);
  if (n > 0) {
    try {
      protocol_->data_received(std::string_view(buf, static_cast<std::size_t>(n)));
    } catch (...) {
      fatal(std::current_exception(), "Protocol::data_received");
    }
    return;
  }
  if (n == 0) {
    reading_ = false;
    eof_received_ = true;
    watch_.on_readable({});
    bool keep_open = false;
    try {
      keep_open = protocol_->eof_received();
    } catch (...) {
      fatal(std::current_exception(), "Protocol::eof_received");
      return;
    }
    if (!keep_open) close();
    return;
  }
  int e = errno;
  if (e == EAGAIN || e == EINTR) return;
  fatal(detail::errno_error(e, "weave::net::Transport: recv"), nullptr);
}

void Transport::write(std::string_view data) {
  if (eof_requested_) throw std::logic_error("weave::net::Transport::write after write_eof()");
  if (lost_ || data.empty()) return;
  if (wpos_ == wbuf_.size()) {
    // Nothing queued: try the kernel at once; most writes end here without copying.
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(data.size())) return;
    if (n < 0) {
      int e = errno;
      if (e != EAGAIN && e != EINTR) {
        fatal(detail::errno_error(e, "weave::net::Transport: send"), nullptr);
        return;
      }
      n = 0;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  wbuf_.append(data);
  arm_writer();
  maybe_pause_protocol();
}

void Transport::arm_writer() {
  if (writer_armed_ || lost_) return;
  writer_armed_ = true;
  watch_.on_writable([this] { on_writable(); });
}

bool Transport::flush() {
  while (wpos_ < wbuf_.size()) {
    const std::size_t want = wbuf_.size() - wpos_;
    ssize_t n = ::send(fd_, wbuf_.data() + wpos_, want, MSG_NOSIGNAL);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN) break;
      fatal(detail::errno_error(e, "weave::net::Transport: send"), nullptr);
      return false;
    }
    wpos_ += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < want) break;  // the socket buffer is full
  }
  if (wpos_ == wbuf_.size()) {
    wbuf_.clear();
    wpos_ = 0;
  } else if (wpos_ >= 64 * 1024 && wpos_ * 2 >= wbuf_.size()) {
    // Drop the sent prefix once it is most of the buffer: moves stay linear overall.
    wbuf_.erase(0, wpos_);
    wpos_ = 0;
  }
  return true;
}

void Transport::on_writable() {
  if (lost_) return;
  if (!flush()) return;
  if (get_write_buffer_size() > 0) {
    maybe_resume_protocol();
    return;
  }
  writer_armed_ = false;
  watch_.on_writable({});
  maybe_resume_protocol();
  if (lost_) return;  // resume_writing() may have aborted
  if (eof_requested_ && !eof_sent_) {
    eof_sent_ = true;
    ::shutdown(fd_, SHUT_WR);
  }
  if (closing_) finish(nullptr);
}

void Transport::maybe_pause_protocol() {
  if (protocol_paused_ || get_write_buffer_size() <= high_water_) return;
  protocol_paused_ = true;
  call_protocol([](Transport& t) { t.protocol_->pause_writing(); }, "Protocol::pause_writing");
}

void Transport::maybe_resume_protocol() {
  if (!protocol_paused_ || get_write_buffer_size() > low_water_) return;
  protocol_paused_ = false;
  call_protocol([](Transport& t) { t.protocol_->resume_writing(); }, "Protocol::resume_writing");
}

void Transport::write_eof() {
  if (closing_ || eof_requested_) return;
  eof_requested_ = true;
  if (get_write_buffer_size() == 0) {
    eof_sent_ = true;
    ::shutdown(fd_, SHUT_WR);
  }
}

void Transport::close() {
  if (closing_) return;
  closing_ = true;
  if (reading_) {
    reading_ = false;
    watch_.on_readable({});
  }
  if (get_write_buffer_size() == 0) finish(nullptr);
  // Otherwise on_writable() finishes once the buffer is sent.
}

void Transport::abort() {
  closing_ = true;
  finish(nullptr);
}

void Transport::pause_reading() {
  if (closing_ || read_paused_) return;
  read_paused_ = true;
  if (reading_) {
    reading_ = false;
    watch_.on_readable({});
  }
}

void Transport::resume_reading() {
  if (!read_paused_) return;
  read_paused_ = false;
  if (closing_ || eof_received_ || reading_ || !self_) return;
  reading_ = true;
  watch_.on_readable([this] { on_readable(); });
}

void Transport::set_write_buffer_limits(std::size_t high, std::size_t low) {
  if (low > high)
    throw std::invalid_argument(
        "weave::net::Transport::set_write_buffer_limits: low water above high water");
  high_water_ = high;
  low_water_ = low;
  maybe_pause_protocol();
  maybe_resume_protocol();
}

void Transport::set_protocol(std::unique_ptr<Protocol> protocol) {
  if (!protocol) throw std::invalid_argument("weave::net::Transport::set_protocol: null protocol");
  // The old protocol may be the caller: it is destroyed on a later turn, not under its feet.
  Protocol* old = protocol_.release();
  protocol_ = std::move(protocol);
  loop_->call_soon([p = std::unique_ptr<Protocol>(old)] {});
}

void Transport::fatal(std::exception_ptr error, const char* what) {
  if (what) {
    // A protocol method threw: a bug to report, and the reason the connection ends.
    loop_->call_exception_handler(
        {std::string("weave::net::Transport: ") + what + " failed; connection aborted", error, {}});
  } else {
    // An I/O error. A peer that went away is ordinary; anything else is worth a report.
    try {
      std::rethrow_exception(error);
    } catch (const std::system_error& e) {
      if (!detail::is_connection_lost(e.code().value()))
        loop_->call_exception_handler({"weave::net::Transport: I/O error", error, {}});
    } catch (...) {
      loop_->call_exception_handler({"weave::net::Transport: error", error, {}});
    }
  }
  closing_ = true;
  finish(std::move(error));
}

void Transport::finish(std::exception_ptr error) {
  if (lost_) return;
  lost_ = true;
  closing_ = true;
  reading_ = false;
  writer_armed_ = false;
  std::string().swap(wbuf_);
  wpos_ = 0;
  watch_.close();
  fd_ = -1;
  if (server_ && server_node_.linked()) server_->connections.erase(&server_node_);
  // connection_lost() runs on a later turn, never inside the call that ended the connection
  // (asyncio's rule): a protocol may close its transport from any of its methods.
  loop_->call_soon([self = std::move(self_), error = std::move(error)]() mutable {
    try {
      self->protocol_->connection_lost(error);
    } catch (...) {
      self->loop_->call_exception_handler(
          {"weave::net::Transport: Protocol::connection_lost failed",
           std::current_exception(),
           {}});
    }
    if (auto* server = std::exchange(self->server_, nullptr)) {
      --server->pending_lost;
      server->connection_finished();
      server->check_done();
      server->unref();
    }
  });
}

Stream Transport::detach(std::string_view unread, StreamOptions options) {
  if (closing_) throw std::logic_error("weave::net::Transport::detach: the transport is closing");
  std::string pending(wbuf_, wpos_);
  // Stop the callbacks and take the fd back from the reactor, open.
  watch_.on_readable({});
  watch_.on_writable({});
  UniqueFd fd(watch_.release());
  fd_ = -1;
  lost_ = closing_ = true;
  reading_ = writer_armed_ = false;
  std::string().swap(wbuf_);
  wpos_ = 0;
  if (server_ && server_node_.linked()) server_->connections.erase(&server_node_);
  // The transport and protocol go on a later turn: the caller is usually the protocol itself.
  loop_->call_soon([self = std::move(self_)] {
    if (auto* server = std::exchange(self->server_, nullptr)) {
      --server->pending_lost;
      server->connection_finished();
      server->check_done();
      server->unref();
    }
  });
  Stream stream = detail::adopt_with_prefix(std::move(fd), unread, options, *loop_);
  if (!pending.empty()) stream.write(pending);
  return stream;
}

// ---- ProtocolServer ---------------------------------------------------------------------------

ProtocolServer& ProtocolServer::operator=(ProtocolServer&& other) noexcept {
  if (this != &other) {
    if (state_) {
      state_->close();
      state_->unref();
    }
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

ProtocolServer::~ProtocolServer() {
  if (state_) {
    state_->close();
    state_->unref();
  }
}

namespace {
detail::ProtocolServerState* live(detail::ProtocolServerState* s, const char* what) {
  if (!s) throw std::logic_error(std::string(what) + " on an empty ProtocolServer");
  return s;
}
}  // namespace

std::uint16_t ProtocolServer::port() const {
  auto* s = live(state_, "weave::net::ProtocolServer::port");
  return s->addresses.empty() ? 0 : s->addresses.front().port();
}

std::vector<SocketAddress> ProtocolServer::addresses() const {
  return live(state_, "weave::net::ProtocolServer::addresses")->addresses;
}

bool ProtocolServer::is_serving() const noexcept { return state_ && state_->serving; }

std::size_t ProtocolServer::connection_count() const noexcept {
  return state_ ? state_->connections.size() : 0;
}

std::size_t ProtocolServer::accepted_count() const noexcept {
  return state_ ? state_->accepted : 0;
}

void ProtocolServer::serve_forever(SourceLocation where) {
  auto* s = live(state_, "weave::net::ProtocolServer::serve_forever");
  ++s->refs;
  struct Unref {
    detail::ProtocolServerState* s;
    ~Unref() { s->unref(); }
  } unref{s};
  try {
    s->closed.wait(where);
  } catch (const Cancelled&) {
    s->close();
    throw;
  }
}

void ProtocolServer::close() noexcept {
  if (state_) state_->close();
}

void ProtocolServer::close_clients() noexcept {
  if (!state_) return;
  // close() unlinks only once the buffer is sent; collect first, the list changes under us.
  std::vector<TransportPtr> all;
  state_->connections.for_each([&](weave::detail::ListNode* n) {
    all.push_back(detail::ProtocolServerState::transport_of(n).shared_from_this());
  });
  for (auto& t : all) t->close();
}

void ProtocolServer::abort_clients() noexcept {
  if (!state_) return;
  std::vector<TransportPtr> all;
  state_->connections.for_each([&](weave::detail::ListNode* n) {
    all.push_back(detail::ProtocolServerState::transport_of(n).shared_from_this());
  });
  for (auto& t : all) t->abort();
}

void ProtocolServer::wait_closed(SourceLocation where) {
  auto* s = live(state_, "weave::net::ProtocolServer::wait_closed");
  ++s->refs;
  struct Unref {
    detail::ProtocolServerState* s;
    ~Unref() { s->unref(); }
  } unref{s};
  s->all_done.wait(where);
}

ProtocolServer create_server(ProtocolFactory factory, const std::vector<SocketAddress>& addresses,
                             ProtocolServerOptions options, Loop& loop) {
  if (!factory) throw std::invalid_argument("weave::net::create_server: empty protocol factory");
  if (addresses.empty()) throw std::invalid_argument("weave::net::create_server: no address");
  if (options.low_water > options.high_water)
    throw std::invalid_argument("weave::net::create_server: low water above high water");
  auto* s = new detail::ProtocolServerState(loop);
  ProtocolServer server(s);  // closes and frees on an exception below
  s->factory = std::move(factory);
  s->options = std::move(options);
  // Port 0 on several addresses (IPv4 and IPv6 for one name): the kernel picks a port for
  // the first, and the others use the same.
  std::uint16_t chosen_port = 0;
  for (SocketAddress a : addresses) {
    if (a.port() == 0 && chosen_port != 0 && a.family() != AF_UNIX) a = a.with_port(chosen_port);
    UniqueFd fd = listen_socket(a, s->options.listen);
    SocketAddress bound = SocketAddress::local_of(fd.get());
    s->listeners.emplace_back(fd.get(), loop);
    fd.release();
    s->addresses.push_back(bound);
    if (chosen_port == 0) chosen_port = bound.port();
  }
  for (std::size_t i = 0; i < s->listeners.size(); ++i)
    s->listeners[i].on_readable([s, i] { s->on_accept(i); });
  return server;
}

ProtocolServer create_server(ProtocolFactory factory, std::string_view host, std::uint16_t port,
                             ProtocolServerOptions options) {
  return create_server(std::move(factory), server_addresses(host, port), std::move(options),
                       Loop::current());
}

// ---- create_connection ------------------------------------------------------------------------

TransportPtr create_connection(ProtocolFactory factory, const SocketAddress& address,
                               SourceLocation where) {
  weave::detail::LoopAccess::require_fiber("weave::net::create_connection");
  if (!factory)
    throw std::invalid_argument("weave::net::create_connection: empty protocol factory");
  UniqueFd fd = connect_socket(address, SOCK_STREAM, where);
  if (detail::is_tcp(address.family())) set_nodelay(fd.get());
  std::unique_ptr<Protocol> protocol = factory();
  if (!protocol) throw std::logic_error("weave::net::create_connection: the factory returned null");
  TransportPtr t =
      detail::TransportAccess::make(Loop::current(), std::move(fd), std::move(protocol));
  detail::TransportAccess::set_peer(*t, address);
  detail::TransportAccess::start(*t);
  return t;
}

TransportPtr create_connection(ProtocolFactory factory, std::string_view host, std::uint16_t port,
                               SourceLocation where) {
  weave::detail::LoopAccess::require_fiber("weave::net::create_connection");
  SocketAddress numeric;
  if (SocketAddress::try_parse(host, port, numeric))
    return create_connection(std::move(factory), numeric, where);
  std::vector<SocketAddress> candidates = resolve(host, port);
  std::exception_ptr last;
  for (const SocketAddress& a : candidates) {
    try {
      return create_connection(factory, a, where);
    } catch (const std::system_error&) {
      last = std::current_exception();  // try the next address
    }
  }
  if (last) std::rethrow_exception(last);
  throw std::system_error(EHOSTUNREACH, std::generic_category(),
                          "weave::net::create_connection: no address for " + std::string(host));
}

}  // namespace weave::net
