// asio_client_fibers: the client of asio_client_callbacks.cpp as fiber code. The same Asio
// socket calls, with weave::use_fiber as the completion token: each one suspends this fiber
// until it completes and returns its result; an error is a std::system_error. The loop over the
// lines is a for loop.
//
// The server is still the callback-style one (upper_server.hpp), on the same io_context and
// the same thread: weave::run(io, ...) drives a weave loop inside the io_context, so callback
// code and fiber code run side by side during a migration.

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <string>

#include "upper_server.hpp"
#include "weave/asio.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

const std::array<std::string, 3> kLines = {"hello", "weave", "bye"};

void talk(asio::io_context& io, const tcp::endpoint& server) {
  tcp::socket socket(io);
  socket.async_connect(server, weave::use_fiber);
  std::puts("connected");
  std::string in;
  for (const std::string& line : kLines) {
    std::printf("> %s\n", line.c_str());
    asio::async_write(socket, asio::buffer(line + "\n"), weave::use_fiber);
    std::size_t n =
        asio::async_read_until(socket, asio::dynamic_buffer(in), '\n', weave::use_fiber);
    std::printf("< %s\n", in.substr(0, n - 1).c_str());
    in.erase(0, n);
  }
  socket.close();
  std::puts("closed");
}

}  // namespace

int main() {
  asio::io_context io;
  example::UpperServer server(io);
  try {
    weave::run(io, [&] { talk(io, server.endpoint()); });
  } catch (const std::system_error& e) {
    std::printf("failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
