// Converts an OpenAPI document with Postman's importer library (openapi-to-postmanv2, the
// code behind Postman's "Import > OpenAPI") and checks that the collection's whoami request
// carries OAuth 2.0 client credentials at the expected token URL, and hello carries none; and
// that the import names the base URL as postman/'s collection and environments do (baseUrl).
// Usage: node check-import.js <openapi.json> <expected token URL>
'use strict';
const fs = require('fs');
const path = require('path');
const converter = require('openapi-to-postmanv2');

const [documentPath, tokenUrl] = process.argv.slice(2);
if (!documentPath || !tokenUrl) {
  console.error('usage: node check-import.js <openapi.json> <expected token URL>');
  process.exit(2);
}

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

// Every request of the collection, however deeply the importer nested its folders.
function requests(items, found = []) {
  for (const item of items || []) {
    if (item.request) found.push(item);
    requests(item.item, found);
  }
  return found;
}

function requestAt(collection, path) {
  const item = requests(collection.item).find(
    (i) => (i.request.url.path || []).join('/') === path.replace(/^\//, '')
  );
  if (!item) fail(`the collection has no request for ${path}`);
  return item.request;
}

function setting(auth, key) {
  const entry = (auth[auth.type] || []).find((e) => e.key === key);
  return entry && entry.value;
}

const data = fs.readFileSync(documentPath, 'utf8');
converter.convertV2({ type: 'string', data }, {}, (error, result) => {
  if (error) fail(`the importer threw: ${error.message || error}`);
  if (!result.result) fail(`the importer refused the document: ${result.reason}`);
  const collection = result.output[0].data;

  const whoami = requestAt(collection, '/api/whoami');
  const auth = whoami.auth;
  if (!auth || auth.type !== 'oauth2') fail(`whoami's auth is ${JSON.stringify(auth)}, not oauth2`);
  const grant = setting(auth, 'grant_type');
  if (grant !== 'client_credentials') fail(`whoami's grant type is ${grant}, not client_credentials`);
  const accessTokenUrl = setting(auth, 'accessTokenUrl');
  if (accessTokenUrl !== tokenUrl) fail(`whoami's access token URL is ${accessTokenUrl}, expected ${tokenUrl}`);

  // One name for the base URL: the importer's, the collection's and the environments'.
  const BASE = 'baseUrl';
  const imported = [].concat(whoami.url.host || []).join('.');
  if (imported !== `{{${BASE}}}`) fail(`the import's whoami host is ${imported}, not {{${BASE}}}`);
  const postman = path.join(__dirname, '..', '..', 'postman');
  const ours = fs.readFileSync(path.join(postman, 'api-guard.postman_collection.json'), 'utf8');
  if (!ours.includes(`{{${BASE}}}/api/whoami`) || /\{\{base_url\}\}/.test(ours)) {
    fail(`postman/api-guard.postman_collection.json does not call the API at {{${BASE}}}`);
  }
  for (const file of ['dev.postman_environment.json', 'okta.postman_environment.json']) {
    const keys = JSON.parse(fs.readFileSync(path.join(postman, file), 'utf8')).values.map((v) => v.key);
    if (!keys.includes(BASE) || keys.includes('base_url')) fail(`postman/${file} does not define ${BASE}`);
  }

  const hello = requestAt(collection, '/api/hello');
  if (hello.auth && hello.auth.type !== 'noauth') fail(`hello asks for auth: ${JSON.stringify(hello.auth)}`);

  console.log(
    `ok: "${collection.info.name}" imports as ${requests(collection.item).length} requests; ` +
      `whoami: oauth2, grant_type=${grant}, accessTokenUrl=${accessTokenUrl}, scope=${setting(auth, 'scope') || '(none)'}; hello: no auth; ` +
      `base URL {{${BASE}}} in the import, postman/'s collection and both environments`
  );
});
