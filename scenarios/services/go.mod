module sandbox.test/services

go 1.19
