// Preloaded into the Portkey gateway (`node --import`): its start script
// listens on every interface and has no option to choose one, and the
// benchmark must only bind 127.0.0.1. Any listen() given a port without a
// host gets 127.0.0.1 as its host.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [first, second] = args;
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    if (first.port !== undefined && first.host === undefined && first.path === undefined) {
      args[0] = { ...first, host: "127.0.0.1" };
    }
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (second === undefined || typeof second === "function" || typeof second === "number") {
      args.splice(1, second === undefined ? 1 : 0, "127.0.0.1");
    }
  }
  return listen.apply(this, args);
};
