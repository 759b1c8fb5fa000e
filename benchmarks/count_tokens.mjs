// Reads a JSON array of strings on stdin; prints a JSON array of their o200k_base token counts.
import { getEncoding } from "js-tiktoken";
const enc = getEncoding("o200k_base");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const texts = JSON.parse(input);
  process.stdout.write(JSON.stringify(texts.map((t) => enc.encode(t).length)));
});
