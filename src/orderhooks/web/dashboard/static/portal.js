// Opens a portal link at once: submits the page's form, which uses the one-time link.
// Without scripts, the button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("portal-form");
  if (form) {
    form.submit();
  }
});
