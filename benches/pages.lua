-- Cycle through 200 different list pages, so most requests miss the page cache.
counter = 0
request = function()
  counter = counter + 1
  local page = (counter % 200) + 1
  return wrk.format("GET", "/devices?page=" .. page)
end
