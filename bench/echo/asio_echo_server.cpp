// asio_echo_server: the Boost.Asio peer of the TCP echo benchmark (bench/echo/run_echo.sh).
//
// Callback style on one single-threaded io_context, the way an Asio echo server is usually
// written: each session reads what is there (async_read_some) and writes it back (async_write)
// before reading again. Prints "listening on <port>" first, then serves until SIGINT/SIGTERM.
//
// Usage: asio_echo_server [--port P]     (0, the default, picks a free port)

#include <boost/asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void start() {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    read();
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                    boost::system::error_code ec, std::size_t n) {
      if (!ec) self->write(n);
    });
  }
  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(buf_, n),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (!ec) self->read();
                      });
  }

  tcp::socket socket_;
  char buf_[4096];
};

void accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](boost::system::error_code ec, tcp::socket socket) {
    if (!ec) {
      std::make_shared<Session>(std::move(socket))->start();
    } else if (ec == asio::error::operation_aborted) {
      return;  // closed at shutdown
    } else if (ec == asio::error::no_descriptors) {
      std::fprintf(stderr, "asio_echo_server: accept: %s\n", ec.message().c_str());
    }
    accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: asio_echo_server [--port P]\n");
      return 2;
    }
  }
  asio::io_context io(1);  // concurrency hint 1: one thread, no locking
  tcp::acceptor acceptor(io);
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  acceptor.open(ep.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen(4096);
  std::printf("listening on %u\n", acceptor.local_endpoint().port());
  std::fflush(stdout);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) {
    acceptor.close();
    io.stop();
  });
  accept(acceptor);
  io.run();
  return 0;
}
