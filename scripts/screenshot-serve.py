"""The README's picture of `gpt2c serve`'s page: serve MODEL, open the page in headless chromium,
generate (the page's defaults, 3 samples, 48 tokens), and save a screenshot to OUT.png.

  .venv/bin/python scripts/screenshot-serve.py out/demo-d4/model docs/serve-page.png
"""
import subprocess
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parent.parent


def main(model, out):
    server = subprocess.Popen([str(ROOT / "build/gpt2c"), "serve", "--model", model, "--port", "0"],
                              stdout=subprocess.PIPE)
    url = server.stdout.readline().decode().split(" on ")[1].split(" ")[0]
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,820"):
        opts.add_argument(arg)
    b = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        b.get(url)
        time.sleep(1)
        b.execute_script("for (const [id, v] of [['n', 3], ['max_tokens', 48]]) { const s = "
                         "document.getElementById(id); s.value = v; s.dispatchEvent(new Event('input')); }")
        b.find_element(By.ID, "go").click()
        for _ in range(600):
            if not b.find_element(By.ID, "go").get_attribute("disabled"):
                break
            time.sleep(0.05)
        b.save_screenshot(out)
    finally:
        b.quit()
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main(*sys.argv[1:3])
