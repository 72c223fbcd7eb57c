#pragma once
// weave and Boost.Asio: the completion token weave::use_fiber (Asio operations as plain calls in
// fibers), and weave::AsioDriver (an io_context and a weave loop on one thread).

#include "weave/asio/driver.hpp"
#include "weave/asio/use_fiber.hpp"
