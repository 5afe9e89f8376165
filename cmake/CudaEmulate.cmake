# A .cu file made C++ for gpt2c's CUDA-on-CPU runtime (src/ops/cuda/emulate/), at build time:
#   kernel<<<grid, block, shmem, stream>>>(args)  ->  ::cuemu::launch("kernel", kernel, grid, block, shmem, stream)(args)
#   extern __shared__ T name[];                    ->  T *name = (T *)::cuemu::dynamic_shared();
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
       "extern[ \t]+__shared__[ \t]+(__align__\\([0-9]+\\)[ \t]+)?([A-Za-z_][A-Za-z0-9_: ]*[A-Za-z0-9_])[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\\[[ \t]*\\][ \t]*;"
       "\\2 *\\3 = (\\2 *)::cuemu::dynamic_shared();" text "${text}")
if(text MATCHES "<<<|extern[ \t]+__shared__")
  message(FATAL_ERROR "${IN}: a launch or an extern __shared__ this rewrite does not understand")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${text}")
file(RENAME "${OUT}.tmp" "${OUT}")
