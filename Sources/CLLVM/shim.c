// CLLVM is a header-only shim over LLVM's C API; SwiftPM needs one source file per C target.
