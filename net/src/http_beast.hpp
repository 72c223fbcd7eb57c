#pragma once
// Boost.Beast's HTTP parser, for the HTTP sources only (the public header does not include
// Beast). g++ 12 with -O2 and ASan reports a false -Wmaybe-uninitialized inside Beast's
// basic_parser (a boost::optional it reads only when set); the pragma keeps our build
// output clean without hiding the warning in our own code.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
