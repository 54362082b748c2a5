// The ABI header is the product of this target; SwiftPM needs one source file.
