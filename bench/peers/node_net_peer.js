// Node peer of tools/bench-net.sh: an echo server and an HTTP/1.1
// keep-alive hello world, core modules only.
//
//   node node_net_peer.js echo PORT   net.createServer, each socket piped
//                                     into itself (socket.pipe(socket))
//   node node_net_peer.js http PORT   http.createServer answering
//                                     "Hello, World!\n" (keep-alive as
//                                     HTTP/1.1 asks)
//
// Runs until killed.
'use strict';
const net = require('net');
const http = require('http');

const [mode, portArg] = process.argv.slice(2);
if (process.argv.length !== 4 || (mode !== 'echo' && mode !== 'http')) {
    console.error('usage: node node_net_peer.js echo|http PORT');
    process.exit(2);
}
const port = Number(portArg);
const hello = Buffer.from('Hello, World!\n');
const server = mode === 'echo'
    ? net.createServer({noDelay: true}, (s) => { s.on('error', () => {}); s.pipe(s); })
    : http.createServer((req, res) => {
        res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': hello.length});
        res.end(hello);
    });
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
