# cmake -DFILE=path -DSHA256=hex -P VerifySha256.cmake: fail the build if a bundled file changed.
file(SHA256 "${FILE}" actual)
if(NOT actual STREQUAL SHA256)
  message(FATAL_ERROR "${FILE}: sha256 is ${actual}, expected ${SHA256} (see data/README.md)")
endif()
