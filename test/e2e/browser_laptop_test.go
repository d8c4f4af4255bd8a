package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// laptopWidth is the most common laptop screen's width, at which the admin
// sessions table overflowed its column and clipped its "+60m" button.
const laptopWidth, laptopHeight = 1366, 768

// TestBrowserAdminSessionsAtLaptopWidth: at 1366 px, every action of a
// session's row is whole on screen without scrolling the table.
func TestBrowserAdminSessionsAtLaptopWidth(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, definitions(entry{Capacity: 2, Reserved: 1}))
	waitReserve(t, p, 1)
	browser := newChromium(t)
	attendee := browser.person("attendee", p)
	attendee.register("laptop-attendee-with-a-long-name")
	attendee.waitCard("available")
	session := attendee.startWorkshop()

	admin := browser.person("admin", p)
	admin.do("a laptop's window", chromedp.EmulateViewport(laptopWidth, laptopHeight))
	admin.open("/admin/sessions/")
	admin.waitPath("/accounts/login/")
	admin.loginHere(adminUser, adminPass)
	admin.waitPath("/admin/sessions/")
	row := `tr[data-session="` + session + `"]`
	admin.waitUntil(settle, "the session's row with its actions", `document.querySelector(`+jsString(row+` button[value="60"]`)+`) ? "" : "no +60m button"`)
	admin.waitUntil(browserStep, "every action of the row whole in the table's frame and the window", `(() => {
		const wrap = document.querySelector(".table-wrap");
		if (wrap.scrollWidth > wrap.clientWidth) return "the table is " + wrap.scrollWidth + "px wide in a " + wrap.clientWidth + "px frame";
		const frame = wrap.getBoundingClientRect();
		for (const b of document.querySelectorAll(`+jsString(row+" button")+`)) {
			const r = b.getBoundingClientRect();
			if (r.width < 1 || r.left < frame.left || r.right > frame.right || r.right > window.innerWidth)
				return JSON.stringify(b.textContent) + " spans x " + r.left + " to " + r.right + " in a frame from " + frame.left + " to " + frame.right;
			const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
			if (!hit || !b.contains(hit)) return JSON.stringify(b.textContent) + " is covered";
		}
		return "";
	})()`)
	admin.screenshot("laptop-admin-sessions")
}
