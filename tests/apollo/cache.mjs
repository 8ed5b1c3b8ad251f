// Apollo's normalised cache keeps one `Photo:<id>` per photo, whichever operation brought it,
// so what one operation learns about a photo reaches every query watching it, with no refetch:
//
// 1. The uploader opens an upload slot (the mutation caches the PENDING photo) and watches
//    the photo; completing the upload returns it READY, and the watcher sees READY.
// 2. A watched list of the session's photos references that same Photo:<id>; a later query
//    of the photo alone returns a fresh download URL, and the list shows it.
//
// The recorded wire shows each watched query went out exactly once.
//
// Input: { url, token, sessionId }.

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import {
  bearer,
  check,
  follow,
  input,
  photoBytes,
  recordingFetch,
  requestsFor,
  run,
  sha256Hex,
  show,
  sleep,
} from "./support.mjs";

const { url, token, sessionId } = input("url", "token", "sessionId");

const REQUEST_UPLOAD = gql`
  mutation CacheRequestUpload($input: RequestPhotoUploadInput!) {
    requestPhotoUpload(input: $input) {
      photo {
        id
        status
        expiresAt
      }
      uploadUrl
      uploadHeaders {
        name
        value
      }
    }
  }
`;
const COMPLETE_UPLOAD = gql`
  mutation CacheCompleteUpload($id: ID!) {
    completePhotoUpload(photoId: $id) {
      id
      status
      expiresAt
    }
  }
`;
const PHOTO_DETAIL = gql`
  query CachePhotoDetail($id: ID!) {
    photo(id: $id) {
      id
      status
      expiresAt
    }
  }
`;
const SESSION_PHOTOS = gql`
  query CacheSessionPhotos($id: ID!) {
    session(id: $id) {
      id
      photos(first: 10) {
        edges {
          cursor
          node {
            id
            status
            url
          }
        }
      }
    }
  }
`;
const PHOTO_URL = gql`
  query CachePhotoUrl($id: ID!) {
    photo(id: $id) {
      id
      url
    }
  }
`;

run(async () => {
  const log = [];
  const cache = new InMemoryCache();
  const client = new ApolloClient({
    link: new HttpLink({ uri: `${url}/graphql`, headers: bearer(token), fetch: recordingFetch(log) }),
    cache,
  });

  // 1. PENDING, then READY through the mutation's answer alone.
  const bytes = photoBytes(2048);
  const slot = await client.mutate({
    mutation: REQUEST_UPLOAD,
    variables: {
      input: { sessionId, sha256: sha256Hex(bytes), contentType: "image/jpeg", byteSize: bytes.length },
    },
  });
  const { photo, uploadUrl, uploadHeaders } = slot.data.requestPhotoUpload;
  const key = cache.identify(photo);
  check(key === `Photo:${photo.id}`, () => `the photo is cached as ${key}`);
  check(cache.extract()[key]?.status === "PENDING", () => `cached ${show(cache.extract()[key])}`);

  const detail = follow(client.watchQuery({ query: PHOTO_DETAIL, variables: { id: photo.id } }), "CachePhotoDetail");
  await detail.waitFor(({ data }) => data?.photo?.status === "PENDING");

  const put = await fetch(uploadUrl, {
    method: "PUT",
    headers: Object.fromEntries(uploadHeaders.map((h) => [h.name, h.value])),
    body: bytes,
  });
  check(put.ok, () => `the upload PUT was answered ${put.status}`);
  await client.mutate({ mutation: COMPLETE_UPLOAD, variables: { id: photo.id } });
  const ready = await detail.waitFor(({ data }) => data?.photo?.status === "READY");
  check(ready.data.photo.expiresAt, () => `READY without expiresAt: ${show(ready.data)}`);

  // 2. The list holds a reference to the same entity, not a copy.
  const list = follow(client.watchQuery({ query: SESSION_PHOTOS, variables: { id: sessionId } }), "CacheSessionPhotos");
  const listed = await list.waitFor(({ data }) => data?.session?.photos?.edges?.length > 0);
  const edges = listed.data.session.photos.edges;
  check(
    edges.length === 1 && edges[0].node.id === photo.id && edges[0].node.status === "READY",
    () => `the list holds ${show(edges)}`,
  );
  const stored = show(cache.extract()[`Session:${sessionId}`]);
  check(stored.includes(`{"__ref":"${key}"}`), () => `Session:${sessionId} does not reference ${key}: ${stored}`);
  const oldUrl = edges[0].node.url;

  // Download URLs are signed to the second: from the next second on, a read signs a new one.
  await sleep(1100 - (Date.now() % 1000));
  const fresh = await client.query({ query: PHOTO_URL, variables: { id: photo.id }, fetchPolicy: "network-only" });
  const newUrl = fresh.data.photo.url;
  check(newUrl && newUrl !== oldUrl, () => `the second read returned the same URL ${newUrl}`);
  const updated = await list.waitFor(({ data }) => data?.session?.photos?.edges?.[0]?.node?.url === newUrl);
  // Still the READY photo, and now with the URL only the later query fetched.
  check(updated.data.session.photos.edges[0].node.status === "READY", "the list lost the status");
  check(cache.extract()[key]?.url === newUrl, "the cached photo kept the old URL");

  const wire = {
    detail: requestsFor(log, "CachePhotoDetail").length,
    list: requestsFor(log, "CacheSessionPhotos").length,
    photoUrl: requestsFor(log, "CachePhotoUrl").length,
    total: log.length,
  };
  check(
    wire.detail === 1 && wire.list === 1 && wire.photoUrl === 1,
    () => `the watched queries were refetched: ${show(wire)}`,
  );
  detail.unsubscribe();
  list.unsubscribe();
  return {
    photoId: photo.id,
    detailStatuses: detail.values.map(({ data }) => data?.photo?.status),
    listUrls: list.values.map(({ data }) => data?.session?.photos?.edges?.[0]?.node?.url),
    wire,
  };
});
