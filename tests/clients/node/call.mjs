// One call of a pharmacy's software written with node-soap, a SOAP stack of another ecosystem
// than garde's: it loads the WSDL from the URL it is given (the gateway's) and calls one
// operation. Prints one JSON line: what the software would see.
//
//   node call.mjs WSDL_URL OPERATION ARGS_JSON SECURITY_HEADER_XML
import soap from "soap";

const [wsdlUrl, operation, argsJson, security] = process.argv.slice(2);

function receiptOf(xml) {
  const found = /<garde:Journaled\b[^>]*\breceipt="([^"]+)"/.exec(xml || "");
  return found ? found[1] : null;
}

try {
  const client = await soap.createClientAsync(wsdlUrl, { wsdl_options: { timeout: 10000 } });
  if (security) client.addSoapHeader(security);
  const address = client.wsdl.services
    ? Object.values(Object.values(client.wsdl.services)[0].ports)[0].location
    : null;
  try {
    const [result, rawResponse] = await client[`${operation}Async`](JSON.parse(argsJson), {
      timeout: 20000,
    });
    console.log(JSON.stringify({ ok: true, address, result, receipt: receiptOf(rawResponse) }));
  } catch (error) {
    const fault = error.root?.Envelope?.Body?.Fault;
    // A faultstring with xml:lang comes as { attributes, $value }.
    const text = (value) => (value && typeof value === "object" ? value.$value : value) ?? null;
    console.log(
      JSON.stringify({
        ok: false,
        address,
        status: error.response?.status ?? null,
        faultstring: text(fault?.faultstring),
        message: String(error.message || error),
      }),
    );
  }
} catch (error) {
  console.log(JSON.stringify({ ok: false, wsdl: false, message: String(error.message || error) }));
}
