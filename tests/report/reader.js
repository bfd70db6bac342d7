// Injected into a copy of the Snakemake report by tests/test_report_browser.py: reads the
// report as a person would, in the browser. For each category it opens Results > category
// (and each of its subcategories, where it has them), and for every file listed clicks its
// info button (the caption pane) and, for images, its view button (the picture), then writes
// what it saw as JSON into <pre id="reader-log">.
(function () {
  const categories = __CATEGORIES__;
  const log = { rows: [], errors: [] };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function waitFor(find) {
    for (let tries = 0; tries < 60; tries++) {
      const found = find();
      if (found) return found;
      await sleep(250);
    }
    return null;
  }
  const link = (text) =>
    Array.from(document.querySelectorAll("a")).find((a) => a.textContent.trim() === text);
  const row = (file) =>
    Array.from(document.querySelectorAll("nav table tbody tr")).find(
      (tr) => tr.querySelector("td").textContent.trim() === file,
    );
  async function click(find) {
    const target = await waitFor(find);
    if (!target) return false;
    target.click();
    await sleep(300);
    return true;
  }
  const tableRows = () => Array.from(document.querySelectorAll("nav table tbody tr"));
  // A category with subcategories (e.g. "findings" beside "Other") lists them first.
  const subcategories = () =>
    Array.from(document.querySelectorAll("div.p-3 ul li a span")).map((s) => s.textContent.trim());
  // From wherever the page is: Results (the breadcrumb may lead to the menu first, so
  // click it until the category is listed), then each name of path in turn.
  async function open(path) {
    for (let tries = 0; tries < 3 && !link(path[0]); tries++) {
      if (!(await click(() => link("Results")))) return false;
    }
    for (const name of path) if (!(await click(() => link(name)))) return false;
    return true;
  }
  async function readFiles(category, path) {
    const files = tableRows().map((tr) => tr.querySelector("td").textContent.trim());
    const back = path[path.length - 1]; // the breadcrumb: back to this list of files
    for (const file of files) {
      const info = () => row(file) && row(file).querySelector('a[iconname="information-circle"]');
      if (!(await click(info))) {
        log.errors.push("no info button for " + file);
        continue;
      }
      const described = await waitFor(() =>
        document.body.innerText.includes("DESCRIPTION") ? document.body.innerText : null,
      );
      const caption = described || "";
      await click(() => link(back));
      let image = null;
      if (/\.(png|svg|jpe?g)$/.test(file)) {
        await click(() => row(file) && row(file).querySelector('a[iconname="eye"]'));
        const img = await waitFor(() =>
          Array.from(document.querySelectorAll("img")).find(
            (candidate) =>
              (candidate.getAttribute("src") || "").startsWith("data:image/png") &&
              candidate.complete &&
              candidate.naturalWidth > 0,
          ),
        );
        image = img ? { width: img.naturalWidth, height: img.naturalHeight } : null;
        await click(() => link(back));
      }
      log.rows.push({ category, subcategory: path[1] || null, file, caption, image });
    }
  }
  async function read() {
    await sleep(1000);
    for (const category of categories) {
      if (!(await open([category]))) {
        log.errors.push("no category " + category);
        continue;
      }
      await waitFor(() => tableRows().length || subcategories().length);
      if (tableRows().length) {
        await readFiles(category, [category]);
        continue;
      }
      for (const sub of subcategories()) {
        if (!(await open([category, sub])) || !(await waitFor(() => tableRows().length))) {
          log.errors.push("no files in " + category + " > " + sub);
          continue;
        }
        await readFiles(category, [category, sub]);
      }
    }
    const pre = document.createElement("pre");
    pre.id = "reader-log";
    pre.textContent = JSON.stringify(log);
    document.body.appendChild(pre);
  }
  read();
})();
