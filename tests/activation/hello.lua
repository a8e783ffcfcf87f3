-- A module as sites write them: one variable and one PATH entry.
whatis("hello: a test module")
setenv("HELLO_MODULE", "loaded")
prepend_path("PATH", "/opt/hello/bin")
