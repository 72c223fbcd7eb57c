# chat_server --demo: three scripted clients in one room. What each saw is checked line by
# line, in a fixed order: alice's, then bob's, then carol's.
weave_example_test(chat_server ARGS --demo
  EXPECT_REGEX "^listening on [0-9]+\n\\[alice saw\\] \\* bob joined \\(2 here\\)\n\\[alice saw\\] \\* carol joined \\(3 here\\)\n\\[alice saw\\] bob: hello alice\n\\[alice saw\\] carol: bye\n\\[alice saw\\] \\* carol left\n\\[bob saw\\] \\* carol joined \\(3 here\\)\n\\[bob saw\\] alice: hi all\n\\[bob saw\\] carol: bye\n\\[bob saw\\] \\* carol left\n\\[carol saw\\] alice: hi all\n\\[carol saw\\] bob: hello alice\nthe room is empty, the server closed\n$")
