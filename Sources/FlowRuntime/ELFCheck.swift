import Foundation

/// Checks that a file is a complete 64-bit little-endian ELF shared object before dlopen maps
/// it: a truncated file would otherwise fault (SIGBUS) when the loader touches pages past its end.
enum ELFCheck {
    static func validate(_ path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw RuntimeError(message: "\(path): cannot open the file") }
        defer { try? handle.close() }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let header = handle.readData(ofLength: 64)
        func fail(_ why: String) -> RuntimeError { RuntimeError(message: "\(path): not a loadable shared object (\(why))") }
        guard header.count == 64, header.starts(with: [0x7F, 0x45, 0x4C, 0x46]) else { throw fail("no ELF header") }
        guard header[4] == 2, header[5] == 1 else { throw fail("not a 64-bit little-endian ELF file") }
        func u16(_ d: Data, _ at: Int) -> Int { Int(d[d.startIndex + at]) | Int(d[d.startIndex + at + 1]) << 8 }
        func u64(_ d: Data, _ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(d[d.startIndex + at + $1]) << (8 * $1) } }
        guard u16(header, 16) == 3 else { throw fail("not a shared object (ELF type \(u16(header, 16)))") }
        let (phoff, phentsize, phnum) = (u64(header, 32), u16(header, 54), u16(header, 56))
        let (shoff, shentsize, shnum) = (u64(header, 40), u16(header, 58), u16(header, 60))
        guard phoff >= 0, phoff + phentsize * phnum <= size, shoff >= 0, shoff + shentsize * shnum <= size, phentsize >= 56 else {
            throw fail("truncated: its headers run past the end of the \(size)-byte file")
        }
        try handle.seek(toOffset: UInt64(phoff))
        let table = handle.readData(ofLength: phentsize * phnum)
        for i in 0..<phnum {
            let entry = table.subdata(in: (i * phentsize)..<((i + 1) * phentsize))
            let type = Int(entry[0]) | Int(entry[1]) << 8
            let (offset, fileSize) = (u64(entry, 8), u64(entry, 32))
            if type == 1, offset < 0 || fileSize < 0 || offset > size || fileSize > size - offset {   // PT_LOAD
                throw fail("truncated: a loadable segment ends at byte \(offset + fileSize), the file has \(size)")
            }
        }
    }
}
