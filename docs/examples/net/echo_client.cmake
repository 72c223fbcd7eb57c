# echo_client with its own in-process echo server: three lines go there and back, the server
# closes after the half-close, then 100 clients at once get every line back.
weave_example_test(echo_client
  EXPECT_REGEX "connected to the echo server\nsent: Hello, World! +got back: Hello, World!\n.*server closed too: yes\n100 clients at once, 10 lines each: 1000 of 1000 lines echoed\n")
