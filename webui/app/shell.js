// The shell's wiring: the sidebar's profile button, search box, direct
// chat and public room buttons, and the notification offer. app.js calls
// wireShell once; auth.js's startApp calls startShell after each log-in.
import { $ } from "./dom.js";
import { profileDialog, loadMyProfile } from "./profile.js";
import { wireSearch } from "./search.js";
import { directChatDialog, directoryDialog } from "./directory.js";
import { renderNotifyBanner } from "./notify.js";

export function wireShell() {
  $("profile-btn")?.addEventListener("click", profileDialog);
  $("dm-btn")?.addEventListener("click", directChatDialog);
  $("directory-btn")?.addEventListener("click", directoryDialog);
  wireSearch();
}

export function startShell() {
  loadMyProfile();
  renderNotifyBanner();
}
