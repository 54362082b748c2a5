// OpenBLAS's CBLAS interface (Debian: libopenblas-dev installs it on the default include path).
#include <cblas.h>
