"""Small real files of each accepted type, made here (no fixtures on disk)."""

import io
import os
import zipfile


def pdf(text: str = "") -> bytes:
    body = f"1 0 obj << /Type /Catalog >> endobj % {text} {os.urandom(8).hex()}\n"
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + body.encode() + b"trailer << /Root 1 0 R >>\n%%EOF\n"


def png() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00" + os.urandom(16)


def jpeg() -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + os.urandom(32) + b"\xff\xd9"


def docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        z.writestr("_rels/.rels", "<Relationships/>")
        z.writestr("word/document.xml", f"<w:document>Nhận xét {os.urandom(4).hex()}</w:document>")
    return buf.getvalue()


def odt() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", f"<office:document-content>{os.urandom(4).hex()}</office:document-content>")
    return buf.getvalue()


def text(content: str = "Biên bản sinh hoạt chi bộ nơi cư trú") -> bytes:
    return f"{content} {os.urandom(4).hex()}\n".encode()


def exe() -> bytes:
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64 + b"This program cannot be run"
