# A .cu file made C++ for gpt2c's CUDA-on-CPU runtime (src/ops/cuda/emulate/), at build time:
#   kernel<<<grid, block, shmem, stream>>>(args)  ->  ::cuemu::launch("kernel", kernel, grid, block, shmem, stream)(args)
#   extern __shared__ T name[];                    ->  T *name = (T *)::cuemu::dynamic_shared();
#   __shared__ T name[N];                          ->  static T name[N]; ::cuemu::fresh_shared(&name, sizeof name);
# (a kernel's name may carry template arguments). Everything else is the kernel language the
# runtime's headers define. A #line keeps messages and sanitizer reports on the .cu file.
# Usage: cmake -DIN=file.cu -DOUT=file.cpp -P CudaEmulate.cmake
file(READ "${IN}" text)
string(REGEX MATCHALL "<<<" opens "${text}")
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*(<[^<>;(){}]*>)?)[ \t\r\n]*<<<"
       "::cuemu::launch(\"\\1\", \\1, " text "${text}")
string(REGEX MATCHALL ">>>[ \t\r\n]*\\(" closes "${text}")
string(REGEX REPLACE ">>>([ \t\r\n]*)\\(" ")\\1(" text "${text}")
list(LENGTH opens n_open)
list(LENGTH closes n_close)
if(NOT n_open EQUAL n_close)
  message(FATAL_ERROR "${IN}: ${n_open} launches (<<<) but ${n_close} >>>( : write each launch as kernel<<<...>>>(args)")
endif()
string(REGEX REPLACE
       "extern[ \t]+__shared__[ \t]+((__align__\\([0-9]+\\)[ \t]+)*)([A-Za-z_][A-Za-z0-9_: ]*[A-Za-z0-9_])[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\\[[ \t]*\\][ \t]*;"
       "\\3 *\\4 = (\\3 *)::cuemu::dynamic_shared();" text "${text}")
# a static shared variable starts each block as 0xff bytes, as a fresh allocation: a value read
# before this block wrote it (a missing __syncthreads) shows instead of last block's
string(REGEX REPLACE
       "__shared__[ \t]+((__align__\\([0-9]+\\)[ \t]+)*)([A-Za-z_][A-Za-z0-9_: ]*[A-Za-z0-9_])[ \t]+([A-Za-z_][A-Za-z0-9_]*)([^;]*);"
       "static \\1\\3 \\4\\5; ::cuemu::fresh_shared(&\\4, sizeof \\4);" text "${text}")
if(text MATCHES "<<<|extern[ \t]+__shared__|__shared__")
  message(FATAL_ERROR "${IN}: a launch or an extern __shared__ this rewrite does not understand")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${text}")
file(RENAME "${OUT}.tmp" "${OUT}")
