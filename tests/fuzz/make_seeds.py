#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/NAME/):
small valid inputs of each format, from which libFuzzer mutates. Run again
only to change the seeds; the files are in the tree."""
import io
import os
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def put(name, fname, data):
    d = os.path.join(HERE, 'corpus', name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


put('votes', 'long.csv', 'clip,annotator,emotion\n1,anna,happy\n1,"M\u00fcller, B.",sad\n00002,bob,7\n')
put('votes', 'wide.csv', '\ufeffclip,happy,sad,neutral,angry,surprise,disgust,fear\r\n1,8,1,1,0,0,0,0\r\n')
put('votes', 'dfew.csv', 'vote_happy,vote_sad,vote_neutral,vote_angry,vote_surprise,vote_disgust,vote_fear,'
    'clip_name,annotation\n8,1,1,0,0,0,0,1,1\n0,0,0,9,1,0,0,"00002",4\n')
put('clips', 'list.csv', 'start,end,label\n0,1.5,happy\n00:00:02.000,00:00:03.5  # a comment\n\n4:05,4:06,3\n')
put('clips', 'plain.csv', '0,1\n1.25,2.5\n')
put('config', 'small.conf', '[daemon]\nworkers = 2\n[queue]\nmax_attempts = 5\nlease_seconds = 2m\n'
    '[limits]\nprep = 1\n[timeouts]\nprobe = 10m\n[fetch]\nmax_bytes = 1.5G\n'
    '[prep]\ntemplate = 1,2 3,4 5,6 7,8 9,10\nwhole_movie = no\n')
with open(os.path.join(HERE, '..', '..', 'packaging', 'dfew.conf.sample')) as f:
    put('config', 'sample.conf', f.read())
put('dfew_names', 'names.txt', '1\n00042\nclip_224x224_16f\nclip_112x112\n00001_00001.jpg\n16.png\n.hidden\n')
put('proto', 'job', 'job id=1 kind=probe attempt=1 max_attempts=3 path=/a%20b.mp4 threads=2')
put('proto', 'hello', 'hello proto=1 pid=2 kinds=noop,probe version=0.1.0 shares=sigrtmin')
put('proto', 'fail', 'fail id=3 retry=0 error=no%25such%0Afile')
for req in ('ping', 'wake', 'status', 'cancel 12'):
    put('ctlreq', req.replace(' ', '_'), req + '\n')


def faces(version, records, others):
    hdr = b'DFEWFACE' + struct.pack('<IIIIIIQdd', version, 64, 584, 68, 640, 360, len(records), 1.0, 1.5)
    hdr += struct.pack('<II', 0 if version >= 2 else 0, len(others) if version >= 2 else 0)
    body = b''
    for i, found in enumerate(records):
        body += struct.pack('<IId4ffI', i, found, 1.0 + i / 30, 10, 20, 110, 120, 0.5, 1)
        body += struct.pack('<136f', *[float(k) for k in range(136)])
    for i in range(len(others) if version >= 2 else 0):
        body += struct.pack('<II4ffI', i, 1, 5, 6, 50, 60, 0.25, 0)
    return hdr + body


put('faces', 'v2.bin', faces(2, [1, 0], [0]))
put('faces', 'v1.bin', faces(1, [1], []))
put('clipu8', 'tiny.u8', b'DFEWCLIP' + struct.pack('<IIIIII', 1, 32, 2, 2, 2, 3) + bytes(range(24)))

xl = io.BytesIO()
with zipfile.ZipFile(xl, 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('[Content_Types].xml', '<?xml version="1.0"?><Types/>')
    z.writestr('xl/workbook.xml', '<workbook xmlns:r="r"><sheets><sheet name="S" sheetId="1" r:id="rId1"/>'
               '</sheets></workbook>')
    z.writestr('xl/_rels/workbook.xml.rels', '<Relationships><Relationship Id="rId1" '
               'Target="worksheets/sheet1.xml"/></Relationships>')
    z.writestr('xl/sharedStrings.xml', '<sst><si><t>clip_name</t></si><si><t>00001</t></si></sst>')
    z.writestr('xl/worksheets/sheet1.xml', '<worksheet><sheetData>'
               '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="inlineStr"><is><t>vote_happy</t></is></c></row>'
               '<row r="3"><c r="A3" t="s"><v>1</v></c><c r="B3"><v>8.0</v></c><c r="D3" t="b"><v>1</v></c></row>'
               '</sheetData></worksheet>')
put('xlsx', 'small.xlsx', xl.getvalue())

# Regression inputs: what the harnesses and their review found (issue 13).
# clip.u8 dimensions whose product wraps around 2^64 to the 12 bytes there
# are (3 * (2^64 + 4)): accepted before, as a 2147549185-frame clip.
put('clipu8', 'regress-wrap.u8', b'DFEWCLIP' + struct.pack('<IIIIII', 1, 32, 2**31 + 2**16 + 1, 2**31 - 2**16 + 1, 4, 3)
    + bytes(12))
# a worksheet row number of 4e9: 4e9 blank CSV lines were written before
xl = io.BytesIO()
with zipfile.ZipFile(xl, 'w') as z:
    z.writestr('xl/workbook.xml', '<workbook><sheets><sheet r:id="rId1"/></sheets></workbook>')
    z.writestr('xl/_rels/workbook.xml.rels', '<Relationships><Relationship Id="rId1" '
               'Target="worksheets/sheet1.xml"/></Relationships>')
    z.writestr('xl/worksheets/sheet1.xml', '<worksheet><sheetData><row r="4000000000"><c r="A1"><v>1</v></c>'
               '</row></sheetData></worksheet>')
put('xlsx', 'regress-row.xlsx', xl.getvalue())
put('config', 'regress-long-comment.conf', '[queue]\n# ' + 'x' * 4094 + ' max_attempts = 9\n')
put('config', 'regress-twice.conf', '[queue]\nmax_attempts = 4\n[queue]\nmax_attempts = 5\n')
put('clips', 'regress-hex.csv', '0x1,2\n1e-320,1\n')
put('clips', 'regress-header.csv', 'abc,def\n')
put('votes', 'regress-latin1.csv', b'clip,annotator,emotion\n1,M\xfcller,sad\n')
